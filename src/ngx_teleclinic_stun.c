
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include "ngx_teleclinic_stun.h"


#define ngx_teleclinic_stun_get16(p)  (((p)[0] << 8) | (p)[1])

#define ngx_teleclinic_stun_get32(p)                                          \
    ((uint32_t) (p)[0] << 24 | (uint32_t) (p)[1] << 16                        \
     | (uint32_t) (p)[2] << 8 | (uint32_t) (p)[3])

#define ngx_teleclinic_stun_set16(p, v)                                       \
    (p)[0] = (u_char) ((v) >> 8); (p)[1] = (u_char) (v)

#define ngx_teleclinic_stun_set32(p, v)                                       \
    (p)[0] = (u_char) ((v) >> 24); (p)[1] = (u_char) ((v) >> 16);             \
    (p)[2] = (u_char) ((v) >> 8); (p)[3] = (u_char) (v)

#define ngx_teleclinic_stun_pad(n)    (((n) + 3) & ~((size_t) 3))

/* ports are xored with the magic cookie's top half */
#define ngx_teleclinic_stun_xor_port(port)                                    \
    ((port) ^ (NGX_TELECLINIC_STUN_MAGIC_COOKIE >> 16))


static void ngx_teleclinic_stun_attribute(ngx_teleclinic_stun_msg_t *msg,
    ngx_uint_t type, u_char *value, size_t len);
static ngx_int_t ngx_teleclinic_stun_get_address(
    ngx_teleclinic_stun_msg_t *msg, u_char *value, size_t len,
    ngx_teleclinic_stun_addr_t *addr);
static ngx_int_t ngx_teleclinic_stun_text(ngx_str_t *s, u_char *value,
    size_t len, size_t max);
static ngx_int_t ngx_teleclinic_stun_hmac(const char *digest, u_char *start,
    u_char *attr, size_t value_len, u_char *key, size_t key_len,
    u_char *md);
static ngx_int_t ngx_teleclinic_stun_add_mac(ngx_buf_t *b, ngx_uint_t type,
    const char *digest, size_t md_len, u_char *key, size_t key_len);


static ngx_str_t  ngx_teleclinic_stun_reasons[] = {
    ngx_string("Try Alternate"),                     /* 300 */
    ngx_string("Bad Request"),                       /* 400 */
    ngx_string("Unauthorized"),                      /* 401 */
    ngx_string("Forbidden"),                         /* 403 */
    ngx_string("Mobility Forbidden"),                /* 405 */
    ngx_string("Unknown Attribute"),                 /* 420 */
    ngx_string("Allocation Mismatch"),               /* 437 */
    ngx_string("Stale Nonce"),                       /* 438 */
    ngx_string("Address Family not Supported"),      /* 440 */
    ngx_string("Wrong Credentials"),                 /* 441 */
    ngx_string("Unsupported Transport Protocol"),    /* 442 */
    ngx_string("Peer Address Family Mismatch"),      /* 443 */
    ngx_string("Allocation Quota Reached"),          /* 486 */
    ngx_string("Server Error"),                      /* 500 */
    ngx_string("Insufficient Capacity"),             /* 508 */
    ngx_null_string
};

static ngx_uint_t  ngx_teleclinic_stun_codes[] = {
    NGX_TELECLINIC_STUN_ERR_TRY_ALTERNATE,
    NGX_TELECLINIC_STUN_ERR_BAD_REQUEST,
    NGX_TELECLINIC_STUN_ERR_UNAUTHENTICATED,
    NGX_TELECLINIC_STUN_ERR_FORBIDDEN,
    NGX_TELECLINIC_STUN_ERR_MOBILITY_FORBIDDEN,
    NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE,
    NGX_TELECLINIC_STUN_ERR_ALLOCATION_MISMATCH,
    NGX_TELECLINIC_STUN_ERR_STALE_NONCE,
    NGX_TELECLINIC_STUN_ERR_ADDRESS_FAMILY,
    NGX_TELECLINIC_STUN_ERR_WRONG_CREDENTIALS,
    NGX_TELECLINIC_STUN_ERR_UNSUPPORTED_TRANSPORT,
    NGX_TELECLINIC_STUN_ERR_PEER_FAMILY_MISMATCH,
    NGX_TELECLINIC_STUN_ERR_ALLOCATION_QUOTA,
    NGX_TELECLINIC_STUN_ERR_SERVER_ERROR,
    NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY,
    0
};


ssize_t
ngx_teleclinic_stun_frame_len(u_char *p, size_t len)
{
    size_t  n;

    if (len > 0 && (p[0] & 0xc0)) {
        return 0;
    }

    if (len < 8) {
        return NGX_AGAIN;
    }

    if (ngx_teleclinic_stun_get32(p + 4) != NGX_TELECLINIC_STUN_MAGIC_COOKIE) {
        return 0;
    }

    n = ngx_teleclinic_stun_get16(p + 2);

    if (n & 3) {
        return 0;
    }

    return NGX_TELECLINIC_STUN_HEADER_LEN + n;
}


ngx_int_t
ngx_teleclinic_stun_parse(u_char *p, size_t len,
    ngx_teleclinic_stun_msg_t *msg)
{
    size_t      alen, padded;
    u_char     *pos, *end, *value;
    uint32_t    crc;
    ngx_uint_t  type;

    ngx_memzero(msg, sizeof(ngx_teleclinic_stun_msg_t));

    if (len < NGX_TELECLINIC_STUN_HEADER_LEN
        || len > NGX_TELECLINIC_STUN_MAX_LEN
        || (p[0] & 0xc0)
        || ngx_teleclinic_stun_get32(p + 4) != NGX_TELECLINIC_STUN_MAGIC_COOKIE
        || (size_t) ngx_teleclinic_stun_get16(p + 2) + 20 != len
        || (len & 3))
    {
        return NGX_ERROR;
    }

    msg->start = p;
    msg->len = len;
    msg->type = ngx_teleclinic_stun_get16(p);
    msg->method = ngx_teleclinic_stun_method(msg->type);
    msg->class = ngx_teleclinic_stun_class(msg->type);
    msg->tid = p + 8;

    pos = p + NGX_TELECLINIC_STUN_HEADER_LEN;
    end = p + len;

    while (pos < end) {

        /* the length is a multiple of 4: a header always fits */

        type = ngx_teleclinic_stun_get16(pos);
        alen = ngx_teleclinic_stun_get16(pos + 2);
        value = pos + 4;
        padded = ngx_teleclinic_stun_pad(alen);

        if (padded > (size_t) (end - value)) {
            return NGX_ERROR;
        }

        /* FINGERPRINT is the last attribute */

        if (msg->fingerprint) {
            return NGX_ERROR;
        }

        if (type == NGX_TELECLINIC_STUN_ATTR_FINGERPRINT) {

            if (alen != 4) {
                return NGX_ERROR;
            }

            crc = ngx_crc32_long(p, pos - p)
                  ^ NGX_TELECLINIC_STUN_FINGERPRINT_XOR;

            if (crc != ngx_teleclinic_stun_get32(value)) {
                return NGX_ERROR;
            }

            msg->fingerprint = pos;

        } else if (msg->integrity_sha256
                   || (msg->integrity
                       && type
                          != NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY_SHA256))
        {
            /*
             * what follows MESSAGE-INTEGRITY(-SHA256) is not covered by
             * it, and is ignored (RFC 8489, 14.5 and 14.6)
             */

        } else {
            ngx_teleclinic_stun_attribute(msg, type, value, alen);

            if (type == NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY
                && alen == NGX_TELECLINIC_STUN_SHA1_LEN)
            {
                msg->integrity = pos;
            }

            if (type == NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY_SHA256
                && alen >= 16 && alen <= NGX_TELECLINIC_STUN_SHA256_LEN
                && (alen & 3) == 0)
            {
                msg->integrity_sha256 = pos;
                msg->integrity_sha256_len = alen;
            }
        }

        pos = value + padded;
    }

    return msg->bad_attribute ? NGX_DECLINED : NGX_OK;
}


static void
ngx_teleclinic_stun_attribute(ngx_teleclinic_stun_msg_t *msg,
    ngx_uint_t type, u_char *value, size_t len)
{
    ngx_int_t   rc;
    ngx_uint_t  i, code;

    rc = NGX_OK;

    switch (type) {

    case NGX_TELECLINIC_STUN_ATTR_USERNAME:
        rc = ngx_teleclinic_stun_text(&msg->username, value, len,
                                      NGX_TELECLINIC_STUN_USERNAME_MAX);
        break;

    case NGX_TELECLINIC_STUN_ATTR_REALM:
        rc = ngx_teleclinic_stun_text(&msg->realm, value, len,
                                      NGX_TELECLINIC_STUN_TEXT_MAX);
        break;

    case NGX_TELECLINIC_STUN_ATTR_NONCE:
        rc = ngx_teleclinic_stun_text(&msg->nonce, value, len,
                                      NGX_TELECLINIC_STUN_TEXT_MAX);
        break;

    case NGX_TELECLINIC_STUN_ATTR_SOFTWARE:
        rc = ngx_teleclinic_stun_text(&msg->software, value, len,
                                      NGX_TELECLINIC_STUN_TEXT_MAX);
        break;

    case NGX_TELECLINIC_STUN_ATTR_USERHASH:
        if (len != NGX_TELECLINIC_STUN_SHA256_LEN) {
            rc = NGX_ERROR;
            break;
        }

        rc = ngx_teleclinic_stun_text(&msg->userhash, value, len, len);
        break;

    case NGX_TELECLINIC_STUN_ATTR_RESERVATION_TOKEN:
        if (len != 8) {
            rc = NGX_ERROR;
            break;
        }

        rc = ngx_teleclinic_stun_text(&msg->reservation_token, value, len,
                                      len);
        break;

    case NGX_TELECLINIC_STUN_ATTR_DATA:
        if (!msg->has_data) {
            msg->data.data = value;
            msg->data.len = len;
            msg->has_data = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_XOR_PEER_ADDRESS:
        if (msg->npeers == NGX_TELECLINIC_STUN_PEERS_MAX) {
            msg->peers_overflow = 1;
            break;
        }

        rc = ngx_teleclinic_stun_get_address(msg, value, len,
                                             &msg->peers[msg->npeers]);
        if (rc == NGX_OK) {
            msg->npeers++;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_XOR_MAPPED_ADDRESS:
        if (!msg->has_mapped) {
            rc = ngx_teleclinic_stun_get_address(msg, value, len,
                                                 &msg->mapped);
            msg->has_mapped = (rc == NGX_OK);
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_XOR_RELAYED_ADDRESS:
        if (!msg->has_relayed) {
            rc = ngx_teleclinic_stun_get_address(msg, value, len,
                                                 &msg->relayed);
            msg->has_relayed = (rc == NGX_OK);
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_LIFETIME:
        if (len != 4) {
            rc = NGX_ERROR;

        } else if (!msg->has_lifetime) {
            msg->lifetime = ngx_teleclinic_stun_get32(value);
            msg->has_lifetime = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_REQUESTED_TRANSPORT:
        if (len != 4) {
            rc = NGX_ERROR;

        } else if (!msg->has_requested_transport) {
            msg->requested_transport = value[0];
            msg->has_requested_transport = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_REQUESTED_ADDRESS_FAMILY:
        if (len != 4) {
            rc = NGX_ERROR;

        } else if (!msg->has_requested_family) {
            msg->requested_family = value[0];
            msg->has_requested_family = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_CHANNEL_NUMBER:
        if (len != 4) {
            rc = NGX_ERROR;

        } else if (!msg->has_channel) {
            msg->channel = ngx_teleclinic_stun_get16(value);
            msg->has_channel = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_EVEN_PORT:
        if (len != 1) {
            rc = NGX_ERROR;

        } else if (!msg->has_even_port) {
            msg->even_port_reserve = (value[0] & 0x80) ? 1 : 0;
            msg->has_even_port = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_DONT_FRAGMENT:
        if (len != 0) {
            rc = NGX_ERROR;
            break;
        }

        msg->dont_fragment = 1;
        break;

    case NGX_TELECLINIC_STUN_ATTR_ERROR_CODE:
        if (len < 4) {
            rc = NGX_ERROR;
            break;
        }

        code = (value[2] & 0x07) * 100 + value[3];

        if (code < NGX_TELECLINIC_STUN_ERR_MIN
            || code > NGX_TELECLINIC_STUN_ERR_MAX
            || value[3] > 99)
        {
            rc = NGX_ERROR;
            break;
        }

        if (!msg->has_error_code) {
            msg->error_code = code;
            msg->has_error_code = 1;
            rc = ngx_teleclinic_stun_text(&msg->error_reason, value + 4,
                                          len - 4,
                                          NGX_TELECLINIC_STUN_TEXT_MAX);
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_PASSWORD_ALGORITHM:
        if (len < 4
            || ngx_teleclinic_stun_pad(ngx_teleclinic_stun_get16(value + 2))
               != len - 4)
        {
            rc = NGX_ERROR;

        } else if (!msg->has_password_algorithm) {
            msg->password_algorithm = ngx_teleclinic_stun_get16(value);
            msg->has_password_algorithm = 1;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY:
        if (len != NGX_TELECLINIC_STUN_SHA1_LEN) {
            rc = NGX_ERROR;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
        if (len < 16 || len > NGX_TELECLINIC_STUN_SHA256_LEN || (len & 3)) {
            rc = NGX_ERROR;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_UNKNOWN_ATTRIBUTES:
        if (len & 1) {
            rc = NGX_ERROR;
        }
        break;

    case NGX_TELECLINIC_STUN_ATTR_MAPPED_ADDRESS:
        /* understood (the client's own address), and of no use here */
        break;

    default:

        if (type >= NGX_TELECLINIC_STUN_ATTR_OPTIONAL) {
            /* comprehension-optional: ignored */
            break;
        }

        for (i = 0; i < msg->nunknown; i++) {
            if (msg->unknown[i] == type) {
                return;
            }
        }

        if (msg->nunknown < NGX_TELECLINIC_STUN_UNKNOWN_MAX) {
            msg->unknown[msg->nunknown++] = (uint16_t) type;
        }

        break;
    }

    if (rc != NGX_OK && msg->bad_attribute == 0) {
        msg->bad_attribute = type;
    }
}


static ngx_int_t
ngx_teleclinic_stun_get_address(ngx_teleclinic_stun_msg_t *msg,
    u_char *value, size_t len, ngx_teleclinic_stun_addr_t *addr)
{
    ngx_uint_t           i;
    struct sockaddr_in  *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6 *sin6;
#endif

    ngx_memzero(addr, sizeof(ngx_teleclinic_stun_addr_t));

    if (len == 8 && value[1] == NGX_TELECLINIC_STUN_FAMILY_IPV4) {
        sin = &addr->sockaddr.sockaddr_in;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(ngx_teleclinic_stun_xor_port(
                                  ngx_teleclinic_stun_get16(value + 2)));
        sin->sin_addr.s_addr = htonl(ngx_teleclinic_stun_get32(value + 4)
                                     ^ NGX_TELECLINIC_STUN_MAGIC_COOKIE);
        addr->socklen = sizeof(struct sockaddr_in);

        return NGX_OK;
    }

#if (NGX_HAVE_INET6)

    if (len == 20 && value[1] == NGX_TELECLINIC_STUN_FAMILY_IPV6) {
        sin6 = &addr->sockaddr.sockaddr_in6;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(ngx_teleclinic_stun_xor_port(
                                    ngx_teleclinic_stun_get16(value + 2)));

        /* the key is the magic cookie and the transaction id */
        for (i = 0; i < 16; i++) {
            sin6->sin6_addr.s6_addr[i] = value[4 + i] ^ msg->start[4 + i];
        }

        addr->socklen = sizeof(struct sockaddr_in6);

        return NGX_OK;
    }

#endif

    return NGX_ERROR;
}


static ngx_int_t
ngx_teleclinic_stun_text(ngx_str_t *s, u_char *value, size_t len, size_t max)
{
    if (len > max) {
        return NGX_ERROR;
    }

    /* the first one counts (RFC 8489, 14) */

    if (s->data == NULL) {
        s->data = value;
        s->len = len;
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_verify_integrity(ngx_teleclinic_stun_msg_t *msg,
    u_char *key, size_t key_len)
{
    u_char  md[NGX_TELECLINIC_STUN_SHA256_LEN];

    if (msg->integrity_sha256) {
        if (ngx_teleclinic_stun_hmac("SHA256", msg->start,
                                     msg->integrity_sha256,
                                     msg->integrity_sha256_len,
                                     key, key_len, md)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return CRYPTO_memcmp(md, msg->integrity_sha256 + 4,
                             msg->integrity_sha256_len) == 0
               ? NGX_OK : NGX_DECLINED;
    }

    if (msg->integrity) {
        if (ngx_teleclinic_stun_hmac("SHA1", msg->start, msg->integrity,
                                     NGX_TELECLINIC_STUN_SHA1_LEN,
                                     key, key_len, md)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return CRYPTO_memcmp(md, msg->integrity + 4,
                             NGX_TELECLINIC_STUN_SHA1_LEN) == 0
               ? NGX_OK : NGX_DECLINED;
    }

    return NGX_DECLINED;
}


/*
 * The HMAC of the message up to the attribute at attr, as if the message
 * ended with that attribute: the header's length counts it.
 */

static ngx_int_t
ngx_teleclinic_stun_hmac(const char *digest, u_char *start, u_char *attr,
    size_t value_len, u_char *key, size_t key_len, u_char *md)
{
    size_t          n, len;
    u_char          length[2];
    ngx_int_t       rc;
    OSSL_PARAM      params[2];
    EVP_MAC_CTX    *ctx;
    static EVP_MAC *mac;

    if (mac == NULL) {
        mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        if (mac == NULL) {
            return NGX_ERROR;
        }
    }

    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    len = attr - start - NGX_TELECLINIC_STUN_HEADER_LEN + 4 + value_len;
    ngx_teleclinic_stun_set16(length, len);

    params[0] = OSSL_PARAM_construct_utf8_string("digest", (char *) digest,
                                                 0);
    params[1] = OSSL_PARAM_construct_end();

    /* an empty key is a key: OpenSSL wants a pointer all the same */

    rc = (EVP_MAC_init(ctx, key_len ? key : (u_char *) "", key_len, params)
              == 1
          && EVP_MAC_update(ctx, start, 2) == 1
          && EVP_MAC_update(ctx, length, 2) == 1
          && EVP_MAC_update(ctx, start + 4, attr - start - 4) == 1
          && EVP_MAC_final(ctx, md, &n, NGX_TELECLINIC_STUN_SHA256_LEN) == 1)
         ? NGX_OK : NGX_ERROR;

    EVP_MAC_CTX_free(ctx);

    return rc;
}


ngx_int_t
ngx_teleclinic_stun_long_term_key(ngx_str_t *username, ngx_str_t *realm,
    ngx_str_t *password, u_char *key)
{
    ngx_int_t    rc;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    rc = (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1
          && EVP_DigestUpdate(ctx, username->data, username->len) == 1
          && EVP_DigestUpdate(ctx, ":", 1) == 1
          && EVP_DigestUpdate(ctx, realm->data, realm->len) == 1
          && EVP_DigestUpdate(ctx, ":", 1) == 1
          && EVP_DigestUpdate(ctx, password->data, password->len) == 1
          && EVP_DigestFinal_ex(ctx, key, NULL) == 1)
         ? NGX_OK : NGX_ERROR;

    EVP_MD_CTX_free(ctx);

    return rc;
}


ngx_int_t
ngx_teleclinic_stun_init(ngx_buf_t *b, ngx_uint_t type, u_char *tid)
{
    u_char  *p;

    if (b->end - b->pos < NGX_TELECLINIC_STUN_HEADER_LEN) {
        return NGX_ERROR;
    }

    p = b->pos;

    ngx_teleclinic_stun_set16(p, type & NGX_TELECLINIC_STUN_TYPE_MASK);
    ngx_teleclinic_stun_set16(p + 2, 0);
    ngx_teleclinic_stun_set32(p + 4, NGX_TELECLINIC_STUN_MAGIC_COOKIE);
    ngx_memmove(p + 8, tid, NGX_TELECLINIC_STUN_TID_LEN);

    b->last = p + NGX_TELECLINIC_STUN_HEADER_LEN;

    return NGX_OK;
}


/* room for an attribute of len bytes, with the header's length set */

static u_char *
ngx_teleclinic_stun_reserve(ngx_buf_t *b, ngx_uint_t type, size_t len)
{
    u_char  *p;
    size_t   size, total;

    size = 4 + ngx_teleclinic_stun_pad(len);
    total = b->last - b->pos + size;

    if (len > 0xffff
        || (size_t) (b->end - b->last) < size
        || total > NGX_TELECLINIC_STUN_MAX_LEN)
    {
        return NULL;
    }

    ngx_teleclinic_stun_set16(b->pos + 2,
                              total - NGX_TELECLINIC_STUN_HEADER_LEN);

    p = b->last;

    ngx_teleclinic_stun_set16(p, type);
    ngx_teleclinic_stun_set16(p + 2, len);

    /* the padding is zeros */
    ngx_memzero(p + 4 + len, ngx_teleclinic_stun_pad(len) - len);

    b->last += size;

    return p + 4;
}


ngx_int_t
ngx_teleclinic_stun_add_attr(ngx_buf_t *b, ngx_uint_t type, u_char *data,
    size_t len)
{
    u_char  *p;

    p = ngx_teleclinic_stun_reserve(b, type, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (len) {
        ngx_memcpy(p, data, len);
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_add_uint32(ngx_buf_t *b, ngx_uint_t type,
    uint32_t value)
{
    u_char  *p;

    p = ngx_teleclinic_stun_reserve(b, type, 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_teleclinic_stun_set32(p, value);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_add_xor_address(ngx_buf_t *b, ngx_uint_t type,
    struct sockaddr *sa)
{
    u_char               *p, *a;
    ngx_uint_t            i, port;
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (sa->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;

        p = ngx_teleclinic_stun_reserve(b, type, 20);
        if (p == NULL) {
            return NGX_ERROR;
        }

        port = ntohs(sin6->sin6_port);
        a = sin6->sin6_addr.s6_addr;

        p[0] = 0;
        p[1] = NGX_TELECLINIC_STUN_FAMILY_IPV6;
        ngx_teleclinic_stun_set16(p + 2, ngx_teleclinic_stun_xor_port(port));

        /* the magic cookie and the transaction id follow the type */
        for (i = 0; i < 16; i++) {
            p[4 + i] = a[i] ^ b->pos[4 + i];
        }

        return NGX_OK;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) sa;

        p = ngx_teleclinic_stun_reserve(b, type, 8);
        if (p == NULL) {
            return NGX_ERROR;
        }

        port = ntohs(sin->sin_port);

        p[0] = 0;
        p[1] = NGX_TELECLINIC_STUN_FAMILY_IPV4;
        ngx_teleclinic_stun_set16(p + 2, ngx_teleclinic_stun_xor_port(port));
        ngx_teleclinic_stun_set32(p + 4, ntohl(sin->sin_addr.s_addr)
                                         ^ NGX_TELECLINIC_STUN_MAGIC_COOKIE);

        return NGX_OK;

    default:
        return NGX_DECLINED;
    }
}


ngx_int_t
ngx_teleclinic_stun_add_error_code(ngx_buf_t *b, ngx_uint_t code,
    ngx_str_t *reason)
{
    u_char  *p;

    if (code < NGX_TELECLINIC_STUN_ERR_MIN
        || code > NGX_TELECLINIC_STUN_ERR_MAX)
    {
        return NGX_ERROR;
    }

    if (reason == NULL) {
        reason = ngx_teleclinic_stun_reason(code);
    }

    if (reason->len > NGX_TELECLINIC_STUN_TEXT_MAX) {
        return NGX_ERROR;
    }

    p = ngx_teleclinic_stun_reserve(b, NGX_TELECLINIC_STUN_ATTR_ERROR_CODE,
                                    4 + reason->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p[0] = 0;
    p[1] = 0;
    p[2] = (u_char) (code / 100);
    p[3] = (u_char) (code % 100);

    if (reason->len) {
        ngx_memcpy(p + 4, reason->data, reason->len);
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_add_unknown(ngx_buf_t *b, uint16_t *types, ngx_uint_t n)
{
    u_char      *p;
    ngx_uint_t   i;

    p = ngx_teleclinic_stun_reserve(b,
                                    NGX_TELECLINIC_STUN_ATTR_UNKNOWN_ATTRIBUTES,
                                    2 * n);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        ngx_teleclinic_stun_set16(p + 2 * i, types[i]);
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_add_integrity(ngx_buf_t *b, u_char *key, size_t key_len)
{
    return ngx_teleclinic_stun_add_mac(b,
                                 NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY,
                                 "SHA1", NGX_TELECLINIC_STUN_SHA1_LEN,
                                 key, key_len);
}


ngx_int_t
ngx_teleclinic_stun_add_integrity_sha256(ngx_buf_t *b, u_char *key,
    size_t key_len)
{
    return ngx_teleclinic_stun_add_mac(b,
                             NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY_SHA256,
                             "SHA256", NGX_TELECLINIC_STUN_SHA256_LEN,
                             key, key_len);
}


static ngx_int_t
ngx_teleclinic_stun_add_mac(ngx_buf_t *b, ngx_uint_t type,
    const char *digest, size_t md_len, u_char *key, size_t key_len)
{
    u_char  *p, *attr;
    u_char   md[NGX_TELECLINIC_STUN_SHA256_LEN];

    attr = b->last;

    if (ngx_teleclinic_stun_hmac(digest, b->pos, attr, md_len, key, key_len,
                                 md)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    p = ngx_teleclinic_stun_reserve(b, type, md_len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, md, md_len);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_add_fingerprint(ngx_buf_t *b)
{
    u_char    *p;
    uint32_t   crc;

    p = ngx_teleclinic_stun_reserve(b, NGX_TELECLINIC_STUN_ATTR_FINGERPRINT,
                                    4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    /* over the header that already counts the fingerprint */
    crc = ngx_crc32_long(b->pos, p - 4 - b->pos)
          ^ NGX_TELECLINIC_STUN_FINGERPRINT_XOR;

    ngx_teleclinic_stun_set32(p, crc);

    return NGX_OK;
}


ssize_t
ngx_teleclinic_stun_channel_len(u_char *p, size_t len, ngx_uint_t stream)
{
    size_t      n;
    ngx_uint_t  channel;

    if (len > 0 && !ngx_teleclinic_stun_is_channel_data(p)) {
        return 0;
    }

    if (len < NGX_TELECLINIC_STUN_CHANNEL_HEADER) {
        return NGX_AGAIN;
    }

    channel = ngx_teleclinic_stun_get16(p);

    if (channel > NGX_TELECLINIC_STUN_CHANNEL_MAX) {
        return 0;
    }

    n = ngx_teleclinic_stun_get16(p + 2);

    if (stream) {
        n = ngx_teleclinic_stun_pad(n);
    }

    return NGX_TELECLINIC_STUN_CHANNEL_HEADER + n;
}


ngx_int_t
ngx_teleclinic_stun_rest_expiry(ngx_str_t *username, time_t *expiry)
{
    size_t   i;
    time_t   t;
    u_char   ch;

    t = 0;

    for (i = 0; i < username->len; i++) {
        ch = username->data[i];

        if (ch == ':') {
            break;
        }

        /* ten digits reach past 2286: more would overflow nothing useful */
        if (ch < '0' || ch > '9' || i == 12) {
            return NGX_ERROR;
        }

        t = t * 10 + (ch - '0');
    }

    if (i == 0) {
        return NGX_ERROR;
    }

    *expiry = t;

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_rest_password(ngx_str_t *secret, ngx_str_t *username,
    ngx_str_t *password)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  md_len;

    if (HMAC(EVP_sha1(), secret->data, (int) secret->len, username->data,
             username->len, md, &md_len)
        == NULL)
    {
        return NGX_ERROR;
    }

    password->len = EVP_EncodeBlock(password->data, md, md_len);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_rest_key(ngx_str_t *secret, ngx_str_t *username,
    ngx_str_t *realm, u_char *key)
{
    u_char     b64[NGX_TELECLINIC_STUN_REST_PASSWORD_LEN];
    ngx_str_t  password;

    password.data = b64;

    if (ngx_teleclinic_stun_rest_password(secret, username, &password)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_stun_long_term_key(username, realm, &password,
                                             key);
}


/* as ngx_hex_dump(), which would bring ngx_string.c into the fuzz target */

static u_char *
ngx_teleclinic_stun_hex(u_char *dst, u_char *src, size_t len)
{
    static u_char  hex[] = "0123456789abcdef";

    while (len--) {
        *dst++ = hex[*src >> 4];
        *dst++ = hex[*src++ & 0xf];
    }

    return dst;
}


static ngx_int_t
ngx_teleclinic_stun_nonce_mac(u_char *key, uint32_t expiry,
    struct sockaddr *sa, u_char *md)
{
    u_char               data[4 + 16];
    size_t               len;
    unsigned int         md_len;
    struct sockaddr_in  *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6 *sin6;
#endif

    ngx_teleclinic_stun_set32(data, expiry);

    switch (sa->sa_family) {

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        ngx_memcpy(data + 4, sin6->sin6_addr.s6_addr, 16);
        len = 4 + 16;
        break;
#endif

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        ngx_memcpy(data + 4, &sin->sin_addr.s_addr, 4);
        len = 4 + 4;
        break;

    default:
        len = 4;
        break;
    }

    if (HMAC(EVP_sha256(), key, NGX_TELECLINIC_STUN_NONCE_KEY_LEN, data, len,
             md, &md_len)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_nonce(u_char *key, time_t expiry, struct sockaddr *sa,
    u_char *nonce)
{
    u_char  md[EVP_MAX_MD_SIZE];
    u_char  raw[4];

    if (ngx_teleclinic_stun_nonce_mac(key, (uint32_t) expiry, sa, md)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_teleclinic_stun_set32(raw, (uint32_t) expiry);

    nonce = ngx_teleclinic_stun_hex(nonce, raw, 4);
    (void) ngx_teleclinic_stun_hex(nonce, md,
                                   (NGX_TELECLINIC_STUN_NONCE_LEN - 8) / 2);

    return NGX_OK;
}


ngx_int_t
ngx_teleclinic_stun_nonce_check(u_char *key, ngx_str_t *nonce,
    struct sockaddr *sa, time_t now)
{
    u_char      md[EVP_MAX_MD_SIZE];
    u_char      hex[NGX_TELECLINIC_STUN_NONCE_LEN];
    uint32_t    expiry;
    ngx_uint_t  i;
    u_char      ch;

    if (nonce->len != NGX_TELECLINIC_STUN_NONCE_LEN) {
        return NGX_DECLINED;
    }

    expiry = 0;

    for (i = 0; i < 8; i++) {
        ch = nonce->data[i];

        if (ch >= '0' && ch <= '9') {
            expiry = (expiry << 4) | (ch - '0');

        } else if (ch >= 'a' && ch <= 'f') {
            expiry = (expiry << 4) | (ch - 'a' + 10);

        } else {
            return NGX_DECLINED;
        }
    }

    if ((time_t) expiry < now) {
        return NGX_DECLINED;
    }

    if (ngx_teleclinic_stun_nonce_mac(key, expiry, sa, md) != NGX_OK) {
        return NGX_ERROR;
    }

    (void) ngx_teleclinic_stun_hex(hex, md,
                                   (NGX_TELECLINIC_STUN_NONCE_LEN - 8) / 2);

    return CRYPTO_memcmp(hex, nonce->data + 8,
                         NGX_TELECLINIC_STUN_NONCE_LEN - 8) == 0
           ? NGX_OK : NGX_DECLINED;
}


static ngx_uint_t
ngx_teleclinic_stun_reserved4(uint32_t a)
{
    ngx_uint_t  i;

    /* address, mask; in host order */
    static uint32_t  reserved[][2] = {
        { 0x00000000, 0xff000000 },    /* 0.0.0.0/8, "this network" */
        { 0x0a000000, 0xff000000 },    /* 10.0.0.0/8 */
        { 0x64400000, 0xffc00000 },    /* 100.64.0.0/10, shared (CGNAT) */
        { 0x7f000000, 0xff000000 },    /* 127.0.0.0/8, loopback */
        { 0xa9fe0000, 0xffff0000 },    /* 169.254.0.0/16, link-local */
        { 0xac100000, 0xfff00000 },    /* 172.16.0.0/12 */
        { 0xc0000000, 0xffffff00 },    /* 192.0.0.0/24, IETF protocols */
        { 0xc0a80000, 0xffff0000 },    /* 192.168.0.0/16 */
        { 0xc6120000, 0xfffe0000 },    /* 198.18.0.0/15, benchmarking */
        { 0xe0000000, 0xf0000000 },    /* 224.0.0.0/4, multicast */
        { 0xf0000000, 0xf0000000 },    /* 240.0.0.0/4 and broadcast */
        { 0xa83f8110, 0xffffffff },    /* 168.63.129.16, Azure's host */
    };

    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if ((a & reserved[i][1]) == reserved[i][0]) {
            return 1;
        }
    }

    return 0;
}


ngx_uint_t
ngx_teleclinic_stun_peer_reserved(struct sockaddr *sa)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    u_char               *p;
    uint32_t              v4;
    struct sockaddr_in6  *sin6;
    static u_char         zero[12];
    static u_char         siit[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                       0xff, 0xff, 0, 0 };
    static u_char         nat64_local[6] = { 0, 0x64, 0xff, 0x9b, 0, 1 };
    static u_char         teredo[4] = { 0x20, 0x01, 0, 0 };
#endif

    switch (sa->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) sa;
        return ngx_teleclinic_stun_reserved4(ntohl(sin->sin_addr.s_addr));

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) sa;
        p = sin6->sin6_addr.s6_addr;

        /*
         * An IPv4 address in an IPv6 form is judged as IPv4: the IPv4
         * mapped form and the well-known NAT64 prefix
         */

        if (ngx_teleclinic_stun_peer_ipv4(sa, &v4)) {
            return ngx_teleclinic_stun_reserved4(v4);
        }

        /* ::/96: unspecified, loopback, the old IPv4-compatible form */
        if (ngx_memcmp(p, zero, 12) == 0) {
            return 1;
        }

        /*
         * never routed on the Internet, so a peer there is a way into
         * translators on the relay's own network: SIIT's IPv4-translated
         * ::ffff:0:0:0/96 (RFC 2765) and the NAT64 local-use
         * 64:ff9b:1::/48 (RFC 8215)
         */

        if (ngx_memcmp(p, siit, 12) == 0
            || ngx_memcmp(p, nat64_local, 6) == 0)
        {
            return 1;
        }

        /*
         * 6to4, 2002:V4ADDR::/48 (RFC 3056), and Teredo, 2001:0::/32
         * with the server's IPv4 and the client's inverted (RFC 4380):
         * a host with such a tunnel sends to the embedded IPv4 address
         */

        if (p[0] == 0x20 && p[1] == 0x02) {
            return ngx_teleclinic_stun_reserved4(ngx_teleclinic_stun_get32(
                                                                      p + 2));
        }

        if (ngx_memcmp(p, teredo, 4) == 0) {
            return ngx_teleclinic_stun_reserved4(ngx_teleclinic_stun_get32(
                                                                      p + 4))
                   || ngx_teleclinic_stun_reserved4(
                                  ~ngx_teleclinic_stun_get32(p + 12));
        }

        return (p[0] & 0xfe) == 0xfc                     /* fc00::/7 */
               || (p[0] == 0xfe && (p[1] & 0x80) == 0x80) /* fe80::/9 */
               || p[0] == 0xff;                          /* multicast */
#endif

    default:
        return 1;
    }
}


ngx_uint_t
ngx_teleclinic_stun_peer_ipv4(struct sockaddr *sa, uint32_t *v4)
{
#if (NGX_HAVE_INET6)
    u_char               *p;
    struct sockaddr_in6  *sin6;
    static u_char         v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                           0, 0, 0xff, 0xff };
    static u_char         nat64[12] = { 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0,
                                        0, 0, 0, 0 };

    if (sa->sa_family != AF_INET6) {
        return 0;
    }

    sin6 = (struct sockaddr_in6 *) sa;
    p = sin6->sin6_addr.s6_addr;

    if (ngx_memcmp(p, v4mapped, 12) == 0 || ngx_memcmp(p, nat64, 12) == 0) {
        *v4 = ngx_teleclinic_stun_get32(p + 12);
        return 1;
    }
#endif

    return 0;
}


ngx_str_t *
ngx_teleclinic_stun_reason(ngx_uint_t code)
{
    ngx_uint_t  i;

    for (i = 0; ngx_teleclinic_stun_codes[i]; i++) {
        if (ngx_teleclinic_stun_codes[i] == code) {
            break;
        }
    }

    /* the last entry is the empty string */
    return &ngx_teleclinic_stun_reasons[i];
}
