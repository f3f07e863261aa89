
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_CRYPT_H_INCLUDED_
#define _NGX_TELECLINIC_CRYPT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/evp.h>


/*
 * Patient data at rest: AES-256-GCM with a random nonce per item.  A
 * sealed item is  kid (4) | nonce (12) | ciphertext | tag (16), the key id
 * being the first bytes of the key's SHA-256, so that during a rotation
 * items sealed with the old key are still opened.  The associated data
 * names what the item is (field and owner), so that a sealed value
 * cannot be moved to another field or appointment.
 */

#define NGX_TELECLINIC_KEY_LEN       32
#define NGX_TELECLINIC_KID_LEN       4
#define NGX_TELECLINIC_NONCE_LEN     12
#define NGX_TELECLINIC_TAG_LEN       16
#define NGX_TELECLINIC_KEYS_MAX      4

#define NGX_TELECLINIC_SEAL_OVERHEAD                                         \
    (NGX_TELECLINIC_KID_LEN + NGX_TELECLINIC_NONCE_LEN + NGX_TELECLINIC_TAG_LEN)

/* the length of a sealed item of n bytes, as base64url */
#define ngx_teleclinic_sealed_b64_len(n)                                     \
    ngx_base64_encoded_length((n) + NGX_TELECLINIC_SEAL_OVERHEAD)


typedef struct {
    u_char                        kid[NGX_TELECLINIC_KID_LEN];
    u_char                        key[NGX_TELECLINIC_KEY_LEN];
    /* the key's schedule, made once per process: only nonces change */
    EVP_CIPHER_CTX               *enc;
    EVP_CIPHER_CTX               *dec;
} ngx_teleclinic_key_t;


/* keys[0] seals; every key opens */
typedef struct {
    ngx_uint_t                    nkeys;
    ngx_teleclinic_key_t          keys[NGX_TELECLINIC_KEYS_MAX];
} ngx_teleclinic_keys_t;


/*
 * A key file holds 32 bytes, raw or as 64 hex digits (a newline after
 * them is allowed).  NGX_OK, or NGX_ERROR with *err set.
 */
ngx_int_t ngx_teleclinic_key_parse(u_char *data, size_t len,
    ngx_teleclinic_key_t *key, const char **err);

/* a pool cleanup: the keys' cipher contexts go with the configuration */
void ngx_teleclinic_keys_cleanup(void *data);

/*
 * Seals len bytes of in into out (len + NGX_TELECLINIC_SEAL_OVERHEAD
 * bytes) with keys[0].  NGX_ERROR when the cipher fails.
 */
ngx_int_t ngx_teleclinic_seal(ngx_teleclinic_keys_t *keys, u_char *aad,
    size_t aad_len, u_char *in, size_t len, u_char *out);

/* the same, safe on any thread: for an image sealed on a thread pool */
ngx_int_t ngx_teleclinic_seal_reentrant(ngx_teleclinic_keys_t *keys,
    u_char *aad, size_t aad_len, u_char *in, size_t len, u_char *out);

/*
 * Opens a sealed item of len bytes into out (len - overhead bytes).
 * NGX_DECLINED: no key has its key id; NGX_ERROR: too short, or not
 * what was sealed with these associated data (the tag does not match).
 */
ngx_int_t ngx_teleclinic_unseal(ngx_teleclinic_keys_t *keys, u_char *aad,
    size_t aad_len, u_char *in, size_t len, u_char *out);


#endif /* _NGX_TELECLINIC_CRYPT_H_INCLUDED_ */
