
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include "ngx_teleclinic_crypt.h"


static ngx_int_t ngx_teleclinic_hex_nibble(u_char c);


ngx_int_t
ngx_teleclinic_key_parse(u_char *data, size_t len, ngx_teleclinic_key_t *key,
    const char **err)
{
    u_char      digest[EVP_MAX_MD_SIZE];
    ngx_int_t   hi, lo;
    ngx_uint_t  i;

    /* hex first: 64 digits could also be taken for raw bytes */

    while (len > NGX_TELECLINIC_KEY_LEN
           && (data[len - 1] == '\n' || data[len - 1] == '\r'))
    {
        len--;
    }

    if (len == 2 * NGX_TELECLINIC_KEY_LEN) {

        for (i = 0; i < NGX_TELECLINIC_KEY_LEN; i++) {
            hi = ngx_teleclinic_hex_nibble(data[2 * i]);
            lo = ngx_teleclinic_hex_nibble(data[2 * i + 1]);

            if (hi < 0 || lo < 0) {
                *err = "64 characters that are not all hex digits";
                return NGX_ERROR;
            }

            key->key[i] = (u_char) (hi << 4 | lo);
        }

    } else if (len == NGX_TELECLINIC_KEY_LEN) {
        ngx_memcpy(key->key, data, NGX_TELECLINIC_KEY_LEN);

    } else {
        *err = "not 32 bytes, raw or as 64 hex digits";
        return NGX_ERROR;
    }

    if (EVP_Digest(key->key, NGX_TELECLINIC_KEY_LEN, digest, NULL,
                   EVP_sha256(), NULL)
        != 1)
    {
        *err = "SHA-256 failed";
        return NGX_ERROR;
    }

    ngx_memcpy(key->kid, digest, NGX_TELECLINIC_KID_LEN);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_seal(ngx_teleclinic_keys_t *keys, u_char *aad, size_t aad_len,
    u_char *in, size_t len, u_char *out)
{
    int                    n;
    u_char                *nonce, *ct;
    ngx_int_t              rc;
    EVP_CIPHER_CTX        *ctx;
    ngx_teleclinic_key_t  *key;

    if (keys == NULL || keys->nkeys == 0 || len > NGX_MAX_INT32_VALUE) {
        return NGX_ERROR;
    }

    key = &keys->keys[0];

    nonce = out + NGX_TELECLINIC_KID_LEN;
    ct = nonce + NGX_TELECLINIC_NONCE_LEN;

    ngx_memcpy(out, key->kid, NGX_TELECLINIC_KID_LEN);

    if (RAND_bytes(nonce, NGX_TELECLINIC_NONCE_LEN) != 1) {
        return NGX_ERROR;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->key, nonce)
        != 1)
    {
        goto done;
    }

    if (aad_len
        && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1)
    {
        goto done;
    }

    if (len && EVP_EncryptUpdate(ctx, ct, &n, in, (int) len) != 1) {
        goto done;
    }

    if (EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                               NGX_TELECLINIC_TAG_LEN, ct + len)
           != 1)
    {
        goto done;
    }

    rc = NGX_OK;

done:

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


ngx_int_t
ngx_teleclinic_unseal(ngx_teleclinic_keys_t *keys, u_char *aad,
    size_t aad_len, u_char *in, size_t len, u_char *out)
{
    int                    n;
    u_char                *nonce, *ct;
    size_t                 ct_len;
    ngx_int_t              rc;
    ngx_uint_t             i;
    EVP_CIPHER_CTX        *ctx;
    ngx_teleclinic_key_t  *key;

    if (len < NGX_TELECLINIC_SEAL_OVERHEAD || len > NGX_MAX_INT32_VALUE) {
        return NGX_ERROR;
    }

    key = NULL;

    for (i = 0; keys && i < keys->nkeys; i++) {
        if (ngx_memcmp(keys->keys[i].kid, in, NGX_TELECLINIC_KID_LEN) == 0) {
            key = &keys->keys[i];
            break;
        }
    }

    if (key == NULL) {
        return NGX_DECLINED;
    }

    nonce = in + NGX_TELECLINIC_KID_LEN;
    ct = nonce + NGX_TELECLINIC_NONCE_LEN;
    ct_len = len - NGX_TELECLINIC_SEAL_OVERHEAD;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    rc = NGX_ERROR;

    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->key, nonce)
        != 1)
    {
        goto done;
    }

    if (aad_len
        && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1)
    {
        goto done;
    }

    if (ct_len && EVP_DecryptUpdate(ctx, out, &n, ct, (int) ct_len) != 1) {
        goto done;
    }

    /* the tag is not const in OpenSSL's prototype */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
                            NGX_TELECLINIC_TAG_LEN, ct + ct_len)
        != 1
        || EVP_DecryptFinal_ex(ctx, out + ct_len, &n) != 1)
    {
        /* nothing of a forged item is left behind */
        OPENSSL_cleanse(out, ct_len);
        goto done;
    }

    rc = NGX_OK;

done:

    EVP_CIPHER_CTX_free(ctx);

    return rc;
}


static ngx_int_t
ngx_teleclinic_hex_nibble(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
