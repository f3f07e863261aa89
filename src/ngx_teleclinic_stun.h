
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_STUN_H_INCLUDED_
#define _NGX_TELECLINIC_STUN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * STUN messages (RFC 8489) with the attributes of TURN (RFC 8656): a
 * parser of untrusted bytes and a builder of answers.  Nothing here uses
 * nginx's runtime (cycle, events, pools), so a fuzz target links it alone.
 */


#define NGX_TELECLINIC_STUN_HEADER_LEN         20
#define NGX_TELECLINIC_STUN_TID_LEN            12
#define NGX_TELECLINIC_STUN_MAGIC_COOKIE       0x2112A442
#define NGX_TELECLINIC_STUN_FINGERPRINT_XOR    0x5354554e

/* the 14 bits of the message type; the top two are 00 in STUN */
#define NGX_TELECLINIC_STUN_TYPE_MASK          0x3fff

/* what the length field allows */
#define NGX_TELECLINIC_STUN_MAX_LEN            (20 + 65532)

/* classes, as bits of the message type */
#define NGX_TELECLINIC_STUN_REQUEST            0x0000
#define NGX_TELECLINIC_STUN_INDICATION         0x0010
#define NGX_TELECLINIC_STUN_SUCCESS            0x0100
#define NGX_TELECLINIC_STUN_ERROR              0x0110

/* methods */
#define NGX_TELECLINIC_STUN_BINDING            0x001
#define NGX_TELECLINIC_STUN_ALLOCATE           0x003
#define NGX_TELECLINIC_STUN_REFRESH            0x004
#define NGX_TELECLINIC_STUN_SEND               0x006
#define NGX_TELECLINIC_STUN_DATA               0x007
#define NGX_TELECLINIC_STUN_CREATE_PERMISSION  0x008
#define NGX_TELECLINIC_STUN_CHANNEL_BIND       0x009

/* error codes: RFC 8489 14.8, RFC 8656 19, RFC 8016 (405) */
#define NGX_TELECLINIC_STUN_ERR_TRY_ALTERNATE          300
#define NGX_TELECLINIC_STUN_ERR_BAD_REQUEST            400
#define NGX_TELECLINIC_STUN_ERR_UNAUTHENTICATED        401
#define NGX_TELECLINIC_STUN_ERR_FORBIDDEN              403
#define NGX_TELECLINIC_STUN_ERR_MOBILITY_FORBIDDEN     405
#define NGX_TELECLINIC_STUN_ERR_UNKNOWN_ATTRIBUTE      420
#define NGX_TELECLINIC_STUN_ERR_ALLOCATION_MISMATCH    437
#define NGX_TELECLINIC_STUN_ERR_STALE_NONCE            438
#define NGX_TELECLINIC_STUN_ERR_ADDRESS_FAMILY         440
#define NGX_TELECLINIC_STUN_ERR_WRONG_CREDENTIALS      441
#define NGX_TELECLINIC_STUN_ERR_UNSUPPORTED_TRANSPORT  442
#define NGX_TELECLINIC_STUN_ERR_PEER_FAMILY_MISMATCH   443
#define NGX_TELECLINIC_STUN_ERR_ALLOCATION_QUOTA       486
#define NGX_TELECLINIC_STUN_ERR_SERVER_ERROR           500
#define NGX_TELECLINIC_STUN_ERR_INSUFFICIENT_CAPACITY  508

/* the range of the ERROR-CODE attribute's class and number */
#define NGX_TELECLINIC_STUN_ERR_MIN                    300
#define NGX_TELECLINIC_STUN_ERR_MAX                    699

/* address families of the address attributes, RFC 8489 14.1 */
#define NGX_TELECLINIC_STUN_FAMILY_IPV4        0x01
#define NGX_TELECLINIC_STUN_FAMILY_IPV6        0x02

/* REQUESTED-TRANSPORT: the IANA protocol number of UDP, RFC 8656 18.7 */
#define NGX_TELECLINIC_STUN_TRANSPORT_UDP      17

/* attributes: comprehension-required below 0x8000 */
#define NGX_TELECLINIC_STUN_ATTR_OPTIONAL                  0x8000

#define NGX_TELECLINIC_STUN_ATTR_MAPPED_ADDRESS            0x0001
#define NGX_TELECLINIC_STUN_ATTR_USERNAME                  0x0006
#define NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY         0x0008
#define NGX_TELECLINIC_STUN_ATTR_ERROR_CODE                0x0009
#define NGX_TELECLINIC_STUN_ATTR_UNKNOWN_ATTRIBUTES        0x000A
#define NGX_TELECLINIC_STUN_ATTR_CHANNEL_NUMBER            0x000C
#define NGX_TELECLINIC_STUN_ATTR_LIFETIME                  0x000D
#define NGX_TELECLINIC_STUN_ATTR_XOR_PEER_ADDRESS          0x0012
#define NGX_TELECLINIC_STUN_ATTR_DATA                      0x0013
#define NGX_TELECLINIC_STUN_ATTR_REALM                     0x0014
#define NGX_TELECLINIC_STUN_ATTR_NONCE                     0x0015
#define NGX_TELECLINIC_STUN_ATTR_XOR_RELAYED_ADDRESS       0x0016
#define NGX_TELECLINIC_STUN_ATTR_REQUESTED_ADDRESS_FAMILY  0x0017
#define NGX_TELECLINIC_STUN_ATTR_EVEN_PORT                 0x0018
#define NGX_TELECLINIC_STUN_ATTR_REQUESTED_TRANSPORT       0x0019
#define NGX_TELECLINIC_STUN_ATTR_DONT_FRAGMENT             0x001A
#define NGX_TELECLINIC_STUN_ATTR_MESSAGE_INTEGRITY_SHA256  0x001C
#define NGX_TELECLINIC_STUN_ATTR_PASSWORD_ALGORITHM        0x001D
#define NGX_TELECLINIC_STUN_ATTR_USERHASH                  0x001E
#define NGX_TELECLINIC_STUN_ATTR_XOR_MAPPED_ADDRESS        0x0020
#define NGX_TELECLINIC_STUN_ATTR_RESERVATION_TOKEN         0x0022
#define NGX_TELECLINIC_STUN_ATTR_PASSWORD_ALGORITHMS       0x8002
#define NGX_TELECLINIC_STUN_ATTR_ALTERNATE_DOMAIN          0x8003
#define NGX_TELECLINIC_STUN_ATTR_SOFTWARE                  0x8022
#define NGX_TELECLINIC_STUN_ATTR_ALTERNATE_SERVER          0x8023
#define NGX_TELECLINIC_STUN_ATTR_FINGERPRINT               0x8028

/* limits of RFC 8489 section 14 */
#define NGX_TELECLINIC_STUN_USERNAME_MAX       513
#define NGX_TELECLINIC_STUN_TEXT_MAX           763   /* 127 characters */

#define NGX_TELECLINIC_STUN_PEERS_MAX          8
#define NGX_TELECLINIC_STUN_UNKNOWN_MAX        8

#define NGX_TELECLINIC_STUN_SHA1_LEN           20
#define NGX_TELECLINIC_STUN_SHA256_LEN         32


typedef struct {
    ngx_sockaddr_t                  sockaddr;
    socklen_t                       socklen;
} ngx_teleclinic_stun_addr_t;


typedef struct {
    u_char                         *start;     /* the whole message */
    size_t                          len;

    ngx_uint_t                      type;
    ngx_uint_t                      method;
    ngx_uint_t                      class;
    u_char                         *tid;       /* 12 bytes */

    ngx_str_t                       username;
    ngx_str_t                       realm;
    ngx_str_t                       nonce;
    ngx_str_t                       software;
    ngx_str_t                       data;
    ngx_str_t                       userhash;
    ngx_str_t                       reservation_token;
    ngx_str_t                       error_reason;

    /* where the attribute's header starts, NULL when absent */
    u_char                         *integrity;
    u_char                         *integrity_sha256;
    size_t                          integrity_sha256_len;
    u_char                         *fingerprint;

    ngx_teleclinic_stun_addr_t      peers[NGX_TELECLINIC_STUN_PEERS_MAX];
    ngx_uint_t                      npeers;
    ngx_teleclinic_stun_addr_t      mapped;    /* XOR-MAPPED-ADDRESS */
    ngx_teleclinic_stun_addr_t      relayed;   /* XOR-RELAYED-ADDRESS */

    uint32_t                        lifetime;
    ngx_uint_t                      requested_transport;
    ngx_uint_t                      requested_family;
    ngx_uint_t                      channel;
    ngx_uint_t                      error_code;
    ngx_uint_t                      password_algorithm;

    uint16_t                        unknown[NGX_TELECLINIC_STUN_UNKNOWN_MAX];
    ngx_uint_t                      nunknown;

    /* the attribute whose value was malformed, for a 400 */
    ngx_uint_t                      bad_attribute;

    unsigned                        has_mapped:1;
    unsigned                        has_relayed:1;
    unsigned                        has_lifetime:1;
    unsigned                        has_requested_transport:1;
    unsigned                        has_requested_family:1;
    unsigned                        has_channel:1;
    unsigned                        has_error_code:1;
    unsigned                        has_even_port:1;
    unsigned                        even_port_reserve:1;
    unsigned                        dont_fragment:1;
    unsigned                        has_data:1;
    unsigned                        has_password_algorithm:1;
    unsigned                        peers_overflow:1;
} ngx_teleclinic_stun_msg_t;


/* method and class, from the 14 bits of the message type */
#define ngx_teleclinic_stun_method(type)                                      \
    (((type) & 0x000f) | (((type) & 0x00e0) >> 1) | (((type) & 0x3e00) >> 2))

#define ngx_teleclinic_stun_class(type)  ((type) & 0x0110)

#define ngx_teleclinic_stun_type(method, cls)                                 \
    (((method) & 0x000f) | (((method) & 0x0070) << 1)                         \
     | (((method) & 0x0f80) << 2) | (cls))


/*
 * The length of the STUN message starting at p, for framing messages in
 * a TCP stream: 0 when the first bytes cannot start one (top bits set,
 * wrong magic cookie, length not a multiple of 4), NGX_AGAIN when fewer
 * than 8 bytes are there to tell.
 */
ssize_t ngx_teleclinic_stun_frame_len(u_char *p, size_t len);

/*
 * Parses the message of len bytes at p into msg, whose pointers then
 * point into p.  NGX_ERROR: not a valid STUN message (bad header or
 * attribute framing, FINGERPRINT that does not match): drop it silently.
 * NGX_DECLINED: a well framed message with a malformed attribute value
 * (msg->bad_attribute), which a request answers with 400.  NGX_OK
 * otherwise; msg->nunknown counts the unknown comprehension-required
 * attributes, which a request answers with 420.
 */
ngx_int_t ngx_teleclinic_stun_parse(u_char *p, size_t len,
    ngx_teleclinic_stun_msg_t *msg);

/*
 * NGX_OK when MESSAGE-INTEGRITY-SHA256, or else MESSAGE-INTEGRITY, is
 * there and matches the key; NGX_DECLINED when absent or mismatched,
 * NGX_ERROR when OpenSSL fails.
 */
ngx_int_t ngx_teleclinic_stun_verify_integrity(ngx_teleclinic_stun_msg_t *msg,
    u_char *key, size_t key_len);

/* the long-term credential key: MD5(username ":" realm ":" password) */
ngx_int_t ngx_teleclinic_stun_long_term_key(ngx_str_t *username,
    ngx_str_t *realm, ngx_str_t *password, u_char *key);

/*
 * The builder writes a message into b (b->pos is its start, b->last its
 * end so far); each call appends an attribute and updates the header's
 * length, or returns NGX_ERROR when b has no room left.
 */
ngx_int_t ngx_teleclinic_stun_init(ngx_buf_t *b, ngx_uint_t type,
    u_char *tid);
ngx_int_t ngx_teleclinic_stun_add_attr(ngx_buf_t *b, ngx_uint_t type,
    u_char *data, size_t len);
ngx_int_t ngx_teleclinic_stun_add_uint32(ngx_buf_t *b, ngx_uint_t type,
    uint32_t value);
ngx_int_t ngx_teleclinic_stun_add_xor_address(ngx_buf_t *b, ngx_uint_t type,
    struct sockaddr *sa);
ngx_int_t ngx_teleclinic_stun_add_error_code(ngx_buf_t *b, ngx_uint_t code,
    ngx_str_t *reason);
ngx_int_t ngx_teleclinic_stun_add_unknown(ngx_buf_t *b, uint16_t *types,
    ngx_uint_t n);
ngx_int_t ngx_teleclinic_stun_add_integrity(ngx_buf_t *b, u_char *key,
    size_t key_len);
ngx_int_t ngx_teleclinic_stun_add_integrity_sha256(ngx_buf_t *b, u_char *key,
    size_t key_len);
ngx_int_t ngx_teleclinic_stun_add_fingerprint(ngx_buf_t *b);

/*
 * TURN's own framing and the stateless parts of its security, still
 * without nginx's runtime: the fuzz target drives them too.
 */

/*
 * ChannelData: RFC 8656 (12) narrowed the channel numbers to
 * 0x4000-0x4fff, RFC 5766 had 0x4000-0x7ffe; clients of the older one
 * (coturn's own) still pick from the wider range, which is taken.
 */
#define NGX_TELECLINIC_STUN_CHANNEL_MIN        0x4000
#define NGX_TELECLINIC_STUN_CHANNEL_MAX        0x7ffe
#define NGX_TELECLINIC_STUN_CHANNEL_HEADER     4

/* the first two bits of ChannelData are 01, those of STUN 00 */
#define ngx_teleclinic_stun_is_channel_data(p)  (((p)[0] & 0xc0) == 0x40)

/* a nonce: 8 hex digits of its expiry, then 24 of its HMAC */
#define NGX_TELECLINIC_STUN_NONCE_LEN          32
#define NGX_TELECLINIC_STUN_NONCE_KEY_LEN      32

/* the long-term key is an MD5 digest */
#define NGX_TELECLINIC_STUN_KEY_LEN            16

/*
 * The length of the ChannelData message at p: over a stream (TCP, TLS)
 * with its padding to 4 bytes, over UDP the header and the data only.
 * 0 when the bytes are not ChannelData (first two bits not 01) or name
 * a channel out of range, NGX_AGAIN when the 4 bytes of the header are
 * not all there.  Over UDP the caller checks that the datagram holds
 * the length.
 */
ssize_t ngx_teleclinic_stun_channel_len(u_char *p, size_t len,
    ngx_uint_t stream);

/*
 * The expiry time of a REST-style username, "expiry[:anything]" with
 * the expiry in decimal seconds since the epoch: NGX_ERROR when the
 * username does not start so.
 */
ngx_int_t ngx_teleclinic_stun_rest_expiry(ngx_str_t *username,
    time_t *expiry);

/*
 * The password of a REST-style username: base64(HMAC-SHA1(secret,
 * username)), written at password->data, which has room for
 * NGX_TELECLINIC_STUN_REST_PASSWORD_LEN bytes.
 */
#define NGX_TELECLINIC_STUN_REST_PASSWORD_LEN  32

ngx_int_t ngx_teleclinic_stun_rest_password(ngx_str_t *secret,
    ngx_str_t *username, ngx_str_t *password);

/*
 * The long-term key of a REST-style username: the password is
 * base64(HMAC-SHA1(secret, username)), the key MD5(username ":" realm
 * ":" password), NGX_TELECLINIC_STUN_KEY_LEN bytes.
 */
ngx_int_t ngx_teleclinic_stun_rest_key(ngx_str_t *secret,
    ngx_str_t *username, ngx_str_t *realm, u_char *key);

/*
 * A nonce that the server need not remember: it carries its expiry and
 * an HMAC of the expiry and of the client's IP address under a key made
 * at start, so that any worker checks it.  The check gives NGX_OK for a
 * nonce this server made for this address and still in time, and
 * NGX_DECLINED for any other (stale, or not ours: both get 438).
 */
ngx_int_t ngx_teleclinic_stun_nonce(u_char *key, time_t expiry,
    struct sockaddr *sa, u_char *nonce);
ngx_int_t ngx_teleclinic_stun_nonce_check(u_char *key, ngx_str_t *nonce,
    struct sockaddr *sa, time_t now);

/*
 * 1 when the peer address is one that a relay must not reach unless the
 * configuration allows it: loopback, private (RFC 1918, fc00::/7),
 * link-local, multicast, unspecified, shared (100.64.0.0/10), reserved,
 * broadcast, the cloud metadata addresses, IPv4 addresses inside IPv6
 * forms (mapped, NAT64 64:ff9b::/96, 6to4, Teredo) by the IPv4 rules,
 * and the translators' ranges never routed (SIIT ::ffff:0:0:0/96, NAT64
 * local-use 64:ff9b:1::/48); 0 otherwise.
 */
ngx_uint_t ngx_teleclinic_stun_peer_reserved(struct sockaddr *sa);

/*
 * 1 and the IPv4 address (in host order) when sa is an IPv6 form that
 * reaches an IPv4 host as such: IPv4-mapped, or the well-known NAT64
 * prefix 64:ff9b::/96; 0 otherwise.
 */
ngx_uint_t ngx_teleclinic_stun_peer_ipv4(struct sockaddr *sa, uint32_t *v4);

/* the reason phrase of an error code, "" for a code it does not know */
ngx_str_t *ngx_teleclinic_stun_reason(ngx_uint_t code);


#endif /* _NGX_TELECLINIC_STUN_H_INCLUDED_ */
