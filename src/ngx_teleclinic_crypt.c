
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
static ngx_int_t ngx_teleclinic_encrypt(EVP_CIPHER_CTX *ctx, u_char *aad,
    size_t aad_len, u_char *in, size_t len, u_char *out);
static ngx_int_t ngx_teleclinic_nonce(u_char *nonce);


/*
 * Nonces come from a per-process stock, refilled from RAND_bytes() a
 * few dozen at a time: one call per item was a tenth of a note's PUT.
 * A process that finds the stock of another (a worker forked from the
 * master) throws it away, so that no two processes use the same nonce.
 * It knows itself by ngx_pid, which nginx sets in each process it forks:
 * getpid() is a system call, and there are five seals in a note.
 */
#define NGX_TELECLINIC_NONCES  32

static u_char     ngx_teleclinic_nonces[NGX_TELECLINIC_NONCES
                                        * NGX_TELECLINIC_NONCE_LEN];
static ngx_uint_t ngx_teleclinic_nonces_left;
static ngx_pid_t  ngx_teleclinic_nonces_pid;


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


void
ngx_teleclinic_keys_cleanup(void *data)
{
    ngx_teleclinic_keys_t  *keys = data;

    ngx_uint_t  i;

    for (i = 0; i < keys->nkeys; i++) {
        EVP_CIPHER_CTX_free(keys->keys[i].enc);
        EVP_CIPHER_CTX_free(keys->keys[i].dec);
        keys->keys[i].enc = NULL;
        keys->keys[i].dec = NULL;
        OPENSSL_cleanse(keys->keys[i].key, NGX_TELECLINIC_KEY_LEN);
    }
}


ngx_int_t
ngx_teleclinic_seal(ngx_teleclinic_keys_t *keys, u_char *aad, size_t aad_len,
    u_char *in, size_t len, u_char *out)
{
    ngx_teleclinic_key_t  *key;

    if (keys == NULL || keys->nkeys == 0 || len > NGX_MAX_INT32_VALUE) {
        return NGX_ERROR;
    }

    key = &keys->keys[0];

    ngx_memcpy(out, key->kid, NGX_TELECLINIC_KID_LEN);

    if (ngx_teleclinic_nonce(out + NGX_TELECLINIC_KID_LEN) != NGX_OK) {
        return NGX_ERROR;
    }

    if (key->enc == NULL) {
        key->enc = EVP_CIPHER_CTX_new();

        if (key->enc == NULL
            || EVP_EncryptInit_ex(key->enc, EVP_aes_256_gcm(), NULL,
                                  key->key, NULL)
               != 1)
        {
            EVP_CIPHER_CTX_free(key->enc);
            key->enc = NULL;
            return NGX_ERROR;
        }
    }

    return ngx_teleclinic_encrypt(key->enc, aad, aad_len, in, len, out);
}


/*
 * A context of its own and a nonce straight from RAND_bytes(), which is
 * thread-safe: the keys' contexts and the nonce stock are the event
 * loop's.  The key schedule made anew is nothing beside a large item.
 */

ngx_int_t
ngx_teleclinic_seal_reentrant(ngx_teleclinic_keys_t *keys, u_char *aad,
    size_t aad_len, u_char *in, size_t len, u_char *out)
{
    ngx_int_t              rc;
    EVP_CIPHER_CTX        *ctx;
    ngx_teleclinic_key_t  *key;

    if (keys == NULL || keys->nkeys == 0 || len > NGX_MAX_INT32_VALUE) {
        return NGX_ERROR;
    }

    key = &keys->keys[0];

    ngx_memcpy(out, key->kid, NGX_TELECLINIC_KID_LEN);

    if (RAND_bytes(out + NGX_TELECLINIC_KID_LEN, NGX_TELECLINIC_NONCE_LEN)
        != 1)
    {
        return NGX_ERROR;
    }

    ctx = EVP_CIPHER_CTX_new();

    if (ctx == NULL
        || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key->key, NULL)
           != 1)
    {
        EVP_CIPHER_CTX_free(ctx);
        return NGX_ERROR;
    }

    rc = ngx_teleclinic_encrypt(ctx, aad, aad_len, in, len, out);

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
    ngx_uint_t             i;
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

    if (key->dec == NULL) {
        key->dec = EVP_CIPHER_CTX_new();

        if (key->dec == NULL
            || EVP_DecryptInit_ex(key->dec, EVP_aes_256_gcm(), NULL,
                                  key->key, NULL)
               != 1)
        {
            EVP_CIPHER_CTX_free(key->dec);
            key->dec = NULL;
            return NGX_ERROR;
        }
    }

    /* the tag is not const in OpenSSL's prototype */
    if (EVP_DecryptInit_ex(key->dec, NULL, NULL, NULL, nonce) != 1
        || (aad_len
            && EVP_DecryptUpdate(key->dec, NULL, &n, aad, (int) aad_len)
               != 1)
        || (ct_len
            && EVP_DecryptUpdate(key->dec, out, &n, ct, (int) ct_len) != 1)
        || EVP_CIPHER_CTX_ctrl(key->dec, EVP_CTRL_GCM_SET_TAG,
                               NGX_TELECLINIC_TAG_LEN, ct + ct_len)
           != 1
        || EVP_DecryptFinal_ex(key->dec, out + ct_len, &n) != 1)
    {
        /* nothing of a forged item is left behind */
        OPENSSL_cleanse(out, ct_len);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* out holds the key id and the nonce; the rest is written after them */

static ngx_int_t
ngx_teleclinic_encrypt(EVP_CIPHER_CTX *ctx, u_char *aad, size_t aad_len,
    u_char *in, size_t len, u_char *out)
{
    int      n;
    u_char  *nonce, *ct;

    nonce = out + NGX_TELECLINIC_KID_LEN;
    ct = nonce + NGX_TELECLINIC_NONCE_LEN;

    if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1
        || (aad_len
            && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int) aad_len) != 1)
        || (len && EVP_EncryptUpdate(ctx, ct, &n, in, (int) len) != 1)
        || EVP_EncryptFinal_ex(ctx, ct + len, &n) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
                               NGX_TELECLINIC_TAG_LEN, ct + len)
           != 1)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_teleclinic_nonce(u_char *nonce)
{
    if (ngx_teleclinic_nonces_left == 0
        || ngx_teleclinic_nonces_pid != ngx_pid)
    {
        if (RAND_bytes(ngx_teleclinic_nonces, sizeof(ngx_teleclinic_nonces))
            != 1)
        {
            return NGX_ERROR;
        }

        ngx_teleclinic_nonces_left = NGX_TELECLINIC_NONCES;
        ngx_teleclinic_nonces_pid = ngx_pid;
    }

    ngx_teleclinic_nonces_left--;

    /* each nonce once: the used one is wiped from the stock */
    ngx_memcpy(nonce, ngx_teleclinic_nonces
                      + ngx_teleclinic_nonces_left * NGX_TELECLINIC_NONCE_LEN,
               NGX_TELECLINIC_NONCE_LEN);
    ngx_memzero(ngx_teleclinic_nonces
                + ngx_teleclinic_nonces_left * NGX_TELECLINIC_NONCE_LEN,
                NGX_TELECLINIC_NONCE_LEN);

    return NGX_OK;
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
