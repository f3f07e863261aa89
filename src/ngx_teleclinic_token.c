
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include "ngx_teleclinic_token.h"


/*
 * A token is base64url(kind, expiry, subject) "." base64url(HMAC-SHA256).
 * The MAC covers the payload with a fixed label, so a key shared with
 * another use cannot be made to sign a token.
 */

static u_char  ngx_teleclinic_token_label[] = "ngx_teleclinic token v1";


/*
 * Fetching HMAC and keying it costs more than the MAC of a token, so each
 * worker keys a context once per secret and copies it for each token.
 */

static ngx_int_t
ngx_teleclinic_token_mac(ngx_str_t *secret, u_char *payload, size_t len,
    u_char *md)
{
    ngx_int_t     rc;
    size_t        n;
    EVP_MAC_CTX  *ctx;
    OSSL_PARAM    params[2];

    static EVP_MAC      *mac;
    static EVP_MAC_CTX  *keyed;
    static u_char       *keyed_secret;

    if (keyed == NULL || keyed_secret != secret->data) {

        if (mac == NULL) {
            mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        }

        EVP_MAC_CTX_free(keyed);
        keyed = (mac != NULL) ? EVP_MAC_CTX_new(mac) : NULL;

        params[0] = OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0);
        params[1] = OSSL_PARAM_construct_end();

        if (keyed != NULL
            && EVP_MAC_init(keyed, secret->data, secret->len, params) != 1)
        {
            EVP_MAC_CTX_free(keyed);
            keyed = NULL;
        }

        keyed_secret = (keyed != NULL) ? secret->data : NULL;
    }

    ctx = (keyed != NULL) ? EVP_MAC_CTX_dup(keyed) : NULL;

    rc = (ctx != NULL
          && EVP_MAC_update(ctx, ngx_teleclinic_token_label,
                            sizeof(ngx_teleclinic_token_label)) == 1
          && EVP_MAC_update(ctx, payload, len) == 1
          && EVP_MAC_final(ctx, md, &n, 32) == 1
          && n == 32)
         ? NGX_OK : NGX_ERROR;

    EVP_MAC_CTX_free(ctx);

    return rc;
}


u_char *
ngx_teleclinic_token_issue(ngx_str_t *secret, ngx_uint_t kind,
    ngx_str_t *subject, time_t expires, u_char *out)
{
    u_char      payload[1 + 8 + NGX_TELECLINIC_SUBJECT_MAX], md[32];
    uint64_t    exp;
    ngx_str_t   src, dst;
    ngx_uint_t  i;

    payload[0] = (u_char) kind;
    exp = (uint64_t) expires;

    for (i = 0; i < 8; i++) {
        payload[1 + i] = (u_char) (exp >> (56 - 8 * i));
    }

    ngx_memcpy(payload + 9, subject->data, subject->len);

    src.data = payload;
    src.len = 9 + subject->len;
    dst.data = out;
    ngx_encode_base64url(&dst, &src);

    out += dst.len;
    *out++ = '.';

    if (ngx_teleclinic_token_mac(secret, payload, src.len, md) != NGX_OK) {
        return NULL;
    }

    src.data = md;
    src.len = 32;
    dst.data = out;
    ngx_encode_base64url(&dst, &src);

    return out + dst.len;
}


static ngx_inline ngx_uint_t
ngx_teleclinic_token_char(u_char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}


/*
 * The last character of a base64url part may carry bits past the last
 * byte, which decoding drops: the part has its one spelling when
 * encoding the bytes gives it back.
 */

static ngx_int_t
ngx_teleclinic_token_spelling(ngx_str_t *text, u_char *bytes, size_t len)
{
    u_char     buf[ngx_base64_encoded_length(1 + 8
                                             + NGX_TELECLINIC_SUBJECT_MAX)];
    ngx_str_t  src, dst;

    src.data = bytes;
    src.len = len;
    dst.data = buf;

    ngx_encode_base64url(&dst, &src);

    if (dst.len != text->len
        || ngx_memcmp(dst.data, text->data, dst.len) != 0)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_token_verify(ngx_str_t *secret, ngx_str_t *token, time_t now,
    ngx_teleclinic_token_t *t)
{
    u_char      *dot, payload[1 + 8 + NGX_TELECLINIC_SUBJECT_MAX + 3];
    u_char       md[32], mac[32 + 3];
    size_t       plen;
    uint64_t     exp;
    ngx_str_t    src, dst;
    ngx_uint_t   i;

    if (token->len > NGX_TELECLINIC_TOKEN_MAX) {
        return NGX_ERROR;
    }

    /* one spelling per token: base64url without padding, one dot */

    for (i = 0; i < token->len; i++) {
        if (!ngx_teleclinic_token_char(token->data[i])) {
            return NGX_ERROR;
        }
    }

    dot = ngx_strlchr(token->data, token->data + token->len, '.');

    if (dot == NULL) {
        return NGX_ERROR;
    }

    src.data = token->data;
    src.len = dot - token->data;

    if (ngx_base64_decoded_length(src.len) > sizeof(payload)) {
        return NGX_ERROR;
    }

    dst.data = payload;

    if (ngx_decode_base64url(&dst, &src) != NGX_OK
        || dst.len < 9 + 1 || dst.len > 9 + NGX_TELECLINIC_SUBJECT_MAX
        || ngx_teleclinic_token_spelling(&src, payload, dst.len) != NGX_OK)
    {
        return NGX_ERROR;
    }

    plen = dst.len;

    src.data = dot + 1;
    src.len = token->data + token->len - src.data;

    if (ngx_base64_decoded_length(src.len) > sizeof(mac)) {
        return NGX_ERROR;
    }

    dst.data = mac;

    if (ngx_decode_base64url(&dst, &src) != NGX_OK || dst.len != 32
        || ngx_teleclinic_token_spelling(&src, mac, 32) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_token_mac(secret, payload, plen, md) != NGX_OK
        || CRYPTO_memcmp(md, mac, 32) != 0)
    {
        return NGX_ERROR;
    }

    t->kind = payload[0];
    exp = 0;

    for (i = 0; i < 8; i++) {
        exp = (exp << 8) | payload[1 + i];
    }

    t->expires = (time_t) exp;
    t->subject.len = plen - 9;
    t->subject.data = t->buf;
    ngx_memcpy(t->buf, payload + 9, t->subject.len);

    if (t->expires < now) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_teleclinic_token_appt_subject(uint64_t id, uint32_t version, u_char *buf,
    ngx_str_t *subject)
{
    ngx_uint_t  i;

    for (i = 0; i < 8; i++) {
        buf[i] = (u_char) (id >> (56 - 8 * i));
    }

    subject->data = buf;
    subject->len = 8;

    if (version) {
        for (i = 0; i < 4; i++) {
            buf[8 + i] = (u_char) (version >> (24 - 8 * i));
        }

        subject->len = 12;
    }
}


ngx_int_t
ngx_teleclinic_token_appt(ngx_teleclinic_token_t *t, uint64_t *id,
    uint32_t *version)
{
    ngx_uint_t  i;

    if (t->kind != NGX_TELECLINIC_TOKEN_PATIENT
        || (t->subject.len != 8 && t->subject.len != 12))
    {
        return NGX_ERROR;
    }

    *id = 0;

    for (i = 0; i < 8; i++) {
        *id = (*id << 8) | t->subject.data[i];
    }

    *version = 0;

    if (t->subject.len == 12) {
        for (i = 0; i < 4; i++) {
            *version = (*version << 8) | t->subject.data[8 + i];
        }

        /* version 0 has one spelling: without the 4 bytes */
        if (*version == 0) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_teleclinic_hmac_sha256(ngx_str_t *key, u_char *data, size_t len,
    u_char *md)
{
    unsigned int  n;

    n = 32;
    HMAC(EVP_sha256(), key->data, (int) key->len, data, len, md, &n);
}


char *
ngx_teleclinic_secret_file(ngx_conf_t *cf, ngx_str_t *path,
    ngx_str_t *secret)
{
    u_char           *p;
    size_t            len;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t         name;
    ngx_file_info_t   fi;

    name = *path;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR
        || ngx_file_size(&fi) > 4096)
    {
        ngx_close_file(fd);
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is not a secret file", name.data);
        return NGX_CONF_ERROR;
    }

    len = ngx_file_size(&fi);

    p = ngx_pnalloc(cf->pool, len + 1);
    if (p == NULL) {
        ngx_close_file(fd);
        return NGX_CONF_ERROR;
    }

    n = read(fd, p, len);
    ngx_close_file(fd);

    if (n != (ssize_t) len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "reading \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    /* the file's last line break is not part of the secret */

    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'
                   || p[len - 1] == ' '))
    {
        len--;
    }

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" holds no secret", name.data);
        return NGX_CONF_ERROR;
    }

    secret->data = p;
    secret->len = len;

    return NGX_CONF_OK;
}
