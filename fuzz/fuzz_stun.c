
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the STUN codec of ngx_teleclinic_stun.c.
 *
 * Each input is parsed as a STUN message.  What the parser accepts must
 * be what the TCP framing finds, with every attribute it kept inside the
 * input.  Then an answer is built from what was parsed (the addresses,
 * the error code, the unknown attributes, the username as SOFTWARE, both
 * MESSAGE-INTEGRITY attributes and FINGERPRINT): it must parse back to
 * the same values and verify with its key and not with another, and
 * with any one byte altered it must be refused.
 *
 * The TURN parts of the codec are driven too: the input framed as
 * ChannelData (over UDP and over a stream), the REST username's expiry
 * and key, nonces (the one the input carries never verifies; one made
 * for the input's peer address verifies until it expires, for that
 * address only), and the peer deny-list on every address parsed.
 *
 * ngx_crc32_long() needs ngx_crc32.c from nginx's sources, which the
 * Makefile compiles from Debian's source package.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic_stun.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }


#define FUZZ_KEY  "VOkJxbRl1RmTxUk/WvJxBt"


static void fuzz_within(ngx_str_t *s, u_char *start, size_t size);
static void fuzz_channel(u_char *buf, size_t size);
static void fuzz_turn(ngx_teleclinic_stun_msg_t *msg, u_char *buf,
    size_t size);
static void fuzz_answer(ngx_teleclinic_stun_msg_t *msg, size_t alter);
static ngx_int_t fuzz_same_addr(ngx_teleclinic_stun_addr_t *a,
    ngx_teleclinic_stun_addr_t *b);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *buf;
    ssize_t                     frame;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_teleclinic_stun_msg_t   msg;

    /* exactly the input's size: ASan sees a read past it */
    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }

    ngx_memcpy(buf, data, size);

    frame = ngx_teleclinic_stun_frame_len(buf, size);
    fuzz_assert(frame == NGX_AGAIN || frame == 0
                || (frame >= NGX_TELECLINIC_STUN_HEADER_LEN
                    && frame <= NGX_TELECLINIC_STUN_MAX_LEN
                    && frame % 4 == 0));

    fuzz_channel(buf, size);

    rc = ngx_teleclinic_stun_parse(buf, size, &msg);

    if (rc == NGX_ERROR) {
        free(buf);
        return 0;
    }

    fuzz_turn(&msg, buf, size);

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);
    fuzz_assert((rc == NGX_DECLINED) == (msg.bad_attribute != 0));
    fuzz_assert(frame == (ssize_t) size);
    fuzz_assert(msg.start == buf && msg.len == size);
    fuzz_assert(msg.tid == buf + 8);
    fuzz_assert(msg.method <= 0xfff);
    fuzz_assert(msg.type
                == ngx_teleclinic_stun_type(msg.method, msg.class));

    fuzz_within(&msg.username, buf, size);
    fuzz_within(&msg.realm, buf, size);
    fuzz_within(&msg.nonce, buf, size);
    fuzz_within(&msg.software, buf, size);
    fuzz_within(&msg.data, buf, size);
    fuzz_within(&msg.userhash, buf, size);
    fuzz_within(&msg.reservation_token, buf, size);
    fuzz_within(&msg.error_reason, buf, size);

    fuzz_assert(msg.username.len <= NGX_TELECLINIC_STUN_USERNAME_MAX);
    fuzz_assert(msg.npeers <= NGX_TELECLINIC_STUN_PEERS_MAX);
    fuzz_assert(msg.nunknown <= NGX_TELECLINIC_STUN_UNKNOWN_MAX);

    for (i = 0; i < msg.nunknown; i++) {
        fuzz_assert(msg.unknown[i] < 0x8000);
    }

    if (msg.fingerprint) {
        fuzz_assert(msg.fingerprint == buf + size - 8);
    }

    if (msg.integrity) {
        fuzz_assert(msg.integrity >= buf + 20
                    && msg.integrity + 24 <= buf + size);
    }

    rc = ngx_teleclinic_stun_verify_integrity(&msg, (u_char *) FUZZ_KEY,
                                              sizeof(FUZZ_KEY) - 1);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (msg.integrity == NULL && msg.integrity_sha256 == NULL) {
        fuzz_assert(rc == NGX_DECLINED);
    }

    fuzz_answer(&msg, size > 20 ? buf[size - 1] * 7 + buf[20] : 0);

    free(buf);

    return 0;
}


static void
fuzz_within(ngx_str_t *s, u_char *start, size_t size)
{
    if (s->data == NULL) {
        fuzz_assert(s->len == 0);
        return;
    }

    fuzz_assert(s->data >= start + 24 && s->data + s->len <= start + size);
}


static void
fuzz_answer(ngx_teleclinic_stun_msg_t *msg, size_t alter)
{
    u_char                      *out, *bad;
    size_t                       len;
    ngx_int_t                    rc;
    ngx_buf_t                    b;
    ngx_str_t                    reason;
    ngx_uint_t                   i, code, cls;
    ngx_teleclinic_stun_msg_t    back;
    u_char                       key2[] = FUZZ_KEY "!";

    out = malloc(NGX_TELECLINIC_STUN_MAX_LEN);
    fuzz_assert(out != NULL);

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.start = out;
    b.pos = out;
    b.last = out;
    b.end = out + NGX_TELECLINIC_STUN_MAX_LEN;

    code = msg->has_error_code ? msg->error_code : 0;
    cls = code ? NGX_TELECLINIC_STUN_ERROR : NGX_TELECLINIC_STUN_SUCCESS;

    fuzz_assert(ngx_teleclinic_stun_init(&b,
                    ngx_teleclinic_stun_type(msg->method, cls), msg->tid)
                == NGX_OK);

    for (i = 0; i < msg->npeers; i++) {
        fuzz_assert(ngx_teleclinic_stun_add_xor_address(&b,
                        NGX_TELECLINIC_STUN_ATTR_XOR_PEER_ADDRESS,
                        &msg->peers[i].sockaddr.sockaddr)
                    == NGX_OK);
    }

    if (msg->has_mapped) {
        fuzz_assert(ngx_teleclinic_stun_add_xor_address(&b,
                        NGX_TELECLINIC_STUN_ATTR_XOR_MAPPED_ADDRESS,
                        &msg->mapped.sockaddr.sockaddr)
                    == NGX_OK);
    }

    if (code) {
        reason = msg->error_reason;
        fuzz_assert(ngx_teleclinic_stun_add_error_code(&b, code, &reason)
                    == NGX_OK);
    }

    if (msg->nunknown) {
        fuzz_assert(ngx_teleclinic_stun_add_unknown(&b, msg->unknown,
                                                    msg->nunknown)
                    == NGX_OK);
    }

    if (msg->username.len <= NGX_TELECLINIC_STUN_TEXT_MAX) {
        fuzz_assert(ngx_teleclinic_stun_add_attr(&b,
                        NGX_TELECLINIC_STUN_ATTR_SOFTWARE,
                        msg->username.data, msg->username.len)
                    == NGX_OK);
    }

    if (msg->has_lifetime) {
        fuzz_assert(ngx_teleclinic_stun_add_uint32(&b,
                        NGX_TELECLINIC_STUN_ATTR_LIFETIME, msg->lifetime)
                    == NGX_OK);
    }

    fuzz_assert(ngx_teleclinic_stun_add_integrity(&b, (u_char *) FUZZ_KEY,
                                                  sizeof(FUZZ_KEY) - 1)
                == NGX_OK);

    /* with MESSAGE-INTEGRITY only: the SHA-1 one is checked */
    len = b.last - b.pos;
    fuzz_assert(ngx_teleclinic_stun_parse(out, len, &back) == NGX_OK);
    fuzz_assert(ngx_teleclinic_stun_verify_integrity(&back,
                    (u_char *) FUZZ_KEY, sizeof(FUZZ_KEY) - 1)
                == NGX_OK);

    fuzz_assert(ngx_teleclinic_stun_add_integrity_sha256(&b,
                    (u_char *) FUZZ_KEY, sizeof(FUZZ_KEY) - 1)
                == NGX_OK);
    fuzz_assert(ngx_teleclinic_stun_add_fingerprint(&b) == NGX_OK);

    len = b.last - b.pos;

    fuzz_assert(ngx_teleclinic_stun_frame_len(out, len) == (ssize_t) len);
    fuzz_assert(ngx_teleclinic_stun_parse(out, len, &back) == NGX_OK);

    fuzz_assert(back.method == msg->method && back.class == cls);
    fuzz_assert(ngx_memcmp(back.tid, msg->tid, 12) == 0);
    fuzz_assert(back.npeers == msg->npeers);

    for (i = 0; i < msg->npeers; i++) {
        fuzz_assert(fuzz_same_addr(&back.peers[i], &msg->peers[i]));
    }

    fuzz_assert(back.has_mapped == msg->has_mapped);

    if (msg->has_mapped) {
        fuzz_assert(fuzz_same_addr(&back.mapped, &msg->mapped));
    }

    fuzz_assert(back.error_code == code);

    if (code) {
        fuzz_assert(back.error_reason.len == msg->error_reason.len
                    && ngx_memcmp(back.error_reason.data,
                                  msg->error_reason.data,
                                  msg->error_reason.len) == 0);
    }

    fuzz_assert(back.has_lifetime == msg->has_lifetime
                && back.lifetime == msg->lifetime);
    fuzz_assert(back.nunknown == 0);
    fuzz_assert(back.fingerprint == out + len - 8);
    fuzz_assert(back.integrity && back.integrity_sha256);

    fuzz_assert(ngx_teleclinic_stun_verify_integrity(&back,
                    (u_char *) FUZZ_KEY, sizeof(FUZZ_KEY) - 1)
                == NGX_OK);
    fuzz_assert(ngx_teleclinic_stun_verify_integrity(&back, key2,
                                                     sizeof(key2) - 1)
                == NGX_DECLINED);

    /*
     * any one byte altered: FINGERPRINT or the header refuses it, unless
     * the change hides FINGERPRINT (its type altered, or a length that
     * frames the attributes otherwise): never a message that passes
     * FINGERPRINT
     */

    bad = malloc(len);
    fuzz_assert(bad != NULL);

    ngx_memcpy(bad, out, len);
    alter %= len;
    bad[alter] ^= (u_char) (1 + alter % 255);

    rc = ngx_teleclinic_stun_parse(bad, len, &back);

    fuzz_assert(rc == NGX_ERROR || back.fingerprint == NULL);

    free(bad);
    free(out);
}


static ngx_int_t
fuzz_same_addr(ngx_teleclinic_stun_addr_t *a, ngx_teleclinic_stun_addr_t *b)
{
    return a->socklen == b->socklen
           && ngx_memcmp(&a->sockaddr, &b->sockaddr, a->socklen) == 0;
}


static void
fuzz_channel(u_char *buf, size_t size)
{
    ssize_t     udp, tcp;
    ngx_uint_t  channel;

    udp = ngx_teleclinic_stun_channel_len(buf, size, 0);
    tcp = ngx_teleclinic_stun_channel_len(buf, size, 1);

    if (size == 0 || (buf[0] & 0xc0) != 0x40) {
        fuzz_assert(size == 0 ? udp == NGX_AGAIN : udp == 0);
        fuzz_assert(udp == tcp);
        return;
    }

    if (size < NGX_TELECLINIC_STUN_CHANNEL_HEADER) {
        fuzz_assert(udp == NGX_AGAIN && tcp == NGX_AGAIN);
        return;
    }

    channel = (buf[0] << 8) | buf[1];

    if (channel > NGX_TELECLINIC_STUN_CHANNEL_MAX) {
        fuzz_assert(udp == 0 && tcp == 0);
        return;
    }

    /* the header and the data; over a stream padded to 4 */
    fuzz_assert(udp == 4 + ((buf[2] << 8) | buf[3]));
    fuzz_assert(tcp >= udp && tcp < udp + 4 && tcp % 4 == 0);
}


static void
fuzz_turn(ngx_teleclinic_stun_msg_t *msg, u_char *buf, size_t size)
{
    time_t               expiry, now;
    ngx_int_t            rc;
    ngx_str_t            secret, realm, nonce;
    ngx_uint_t           i;
    struct sockaddr     *sa;
    struct sockaddr_in   sin, other;
    u_char               key[NGX_TELECLINIC_STUN_KEY_LEN];
    u_char               key2[NGX_TELECLINIC_STUN_KEY_LEN];
    u_char               text[NGX_TELECLINIC_STUN_NONCE_LEN];
    u_char               nkey[NGX_TELECLINIC_STUN_NONCE_KEY_LEN];

    ngx_str_set(&secret, FUZZ_KEY);
    ngx_str_set(&realm, "fuzz.realm");

    ngx_memset(nkey, 0x5a, sizeof(nkey));

    /* the username: its expiry, and a key that depends on the secret */

    if (ngx_teleclinic_stun_rest_expiry(&msg->username, &expiry) == NGX_OK) {
        fuzz_assert(msg->username.len > 0);
        fuzz_assert(msg->username.data[0] >= '0'
                    && msg->username.data[0] <= '9');
        fuzz_assert(expiry >= 0);
    }

    fuzz_assert(ngx_teleclinic_stun_rest_key(&secret, &msg->username, &realm,
                                             key)
                == NGX_OK);

    secret.len--;
    fuzz_assert(ngx_teleclinic_stun_rest_key(&secret, &msg->username, &realm,
                                             key2)
                == NGX_OK);
    fuzz_assert(ngx_memcmp(key, key2, sizeof(key)) != 0);

    /* the peers */

    for (i = 0; i < msg->npeers; i++) {
        sa = &msg->peers[i].sockaddr.sockaddr;
        rc = ngx_teleclinic_stun_peer_reserved(sa);
        fuzz_assert(rc == 0 || rc == 1);

        if (sa->sa_family == AF_INET
            && (ntohl(((struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24)
               == 127)
        {
            fuzz_assert(rc == 1);
        }
    }

    /* nonces: the input's never verifies */

    ngx_memzero(&sin, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(0x7f000001);

    if (msg->npeers && msg->peers[0].sockaddr.sockaddr.sa_family == AF_INET)
    {
        ngx_memcpy(&sin, &msg->peers[0].sockaddr.sockaddr_in, sizeof(sin));
    }

    sa = (struct sockaddr *) &sin;
    now = 1700000000;

    rc = ngx_teleclinic_stun_nonce_check(nkey, &msg->nonce, sa, 0);
    fuzz_assert(rc == NGX_DECLINED);

    /* one made here verifies until it expires, for its address only */

    expiry = now + (size % 4096);

    fuzz_assert(ngx_teleclinic_stun_nonce(nkey, expiry, sa, text) == NGX_OK);

    nonce.data = text;
    nonce.len = sizeof(text);

    fuzz_assert(ngx_teleclinic_stun_nonce_check(nkey, &nonce, sa, now)
                == NGX_OK);
    fuzz_assert(ngx_teleclinic_stun_nonce_check(nkey, &nonce, sa, expiry)
                == NGX_OK);
    fuzz_assert(ngx_teleclinic_stun_nonce_check(nkey, &nonce, sa,
                                                expiry + 1)
                == NGX_DECLINED);

    ngx_memcpy(&other, &sin, sizeof(sin));
    other.sin_addr.s_addr ^= htonl(1);

    fuzz_assert(ngx_teleclinic_stun_nonce_check(nkey, &nonce,
                                                (struct sockaddr *) &other,
                                                now)
                == NGX_DECLINED);

    /* one byte of it altered */
    text[size % sizeof(text)] ^= 0x01;
    fuzz_assert(ngx_teleclinic_stun_nonce_check(nkey, &nonce, sa, now)
                == NGX_DECLINED);

    (void) buf;
}
