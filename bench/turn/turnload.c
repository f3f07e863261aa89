/*
 * turnload: a TURN (RFC 8656) load generator over UDP, for bench/turn.sh.
 *
 * Opens N allocations on one server with REST-style credentials (username
 * "expiry:benchN", password base64(HMAC-SHA1(secret, username))): each
 * client socket goes through 401 -> Allocate with MESSAGE-INTEGRITY,
 * CreatePermission and ChannelBind to a peer socket this program owns.
 * Then every stream sends ChannelData of a given size at a given rate,
 * spread evenly in time (what falls due within a quantum, -q, goes out
 * together), with a sequence number and a send time in the payload.  The
 * clients' sockets are on a loopback address new for each run (-a), so
 * that a server still holding the last run's 5-tuples does not refuse
 * them.  The peer socket takes the relayed datagrams with the kernel's
 * receive time (SO_TIMESTAMPNS) and, with -e, sends each one back through
 * the relay, as the other party of a call would.  At the end: packets
 * sent, relayed, lost, the one-way time through the relay (p50, p99,
 * max), the longest gap a stream saw, and how much CPU the server's
 * processes (-c PID) and this program used while the streams ran.
 *
 * With -D the same streams go straight from client to peer sockets,
 * without a server: the loopback path's own latency, to compare with.
 *
 * With -P MS each client also sends a Refresh every MS milliseconds while
 * it streams and, answered 437 (the server no longer knows the
 * allocation, e.g. after a reload) or not answered at all, allocates
 * again, as a browser's ICE restart would, only sooner.  The gaps then
 * show how long a reload interrupts a relayed stream.
 *
 * Build: gcc -O2 -Wall -o turnload turnload.c -lcrypto
 *
 * The last line of output is "RESULT key=value ..." for scripts.
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>


#define TL_COOKIE              0x2112A442
#define TL_MAGIC               0x544c4431      /* "TLD1" in payloads */

#define TL_BINDING             0x0001
#define TL_ALLOCATE            0x0003
#define TL_REFRESH             0x0004
#define TL_CREATE_PERMISSION   0x0008
#define TL_CHANNEL_BIND        0x0009

#define TL_CLASS_MASK          0x0110
#define TL_CLASS_SUCCESS       0x0100
#define TL_CLASS_ERROR         0x0110

#define TL_ATTR_USERNAME       0x0006
#define TL_ATTR_INTEGRITY      0x0008
#define TL_ATTR_ERROR_CODE     0x0009
#define TL_ATTR_CHANNEL        0x000C
#define TL_ATTR_LIFETIME       0x000D
#define TL_ATTR_PEER           0x0012
#define TL_ATTR_REALM          0x0014
#define TL_ATTR_NONCE          0x0015
#define TL_ATTR_RELAYED        0x0016
#define TL_ATTR_TRANSPORT      0x0019
#define TL_ATTR_FINGERPRINT    0x8028

#define TL_MSG_MAX             512
#define TL_PAYLOAD_MIN         24
#define TL_PAYLOAD_MAX         1400
#define TL_BATCH               64

/* a transaction is sent again after this, at most TL_TRIES times */
#define TL_RTO_NS              (500 * 1000000LL)
#define TL_TRIES               6

/* requests in flight at once while allocating (a browser makes few) */
#define TL_WINDOW              64

/* 1 us buckets up to 100 ms, then 1 ms buckets up to 60 s */
#define TL_HIST_US             100000
#define TL_HIST_MS             60000


typedef enum {
    TL_IDLE = 0,
    TL_ALLOC,
    TL_ALLOC_AUTH,
    TL_PERMISSION,
    TL_BIND,
    TL_READY,
    TL_FREE,
    TL_DONE,
    TL_FAILED
} tl_state_e;


typedef struct {
    int                 fd;
    tl_state_e          state;

    uint16_t            method;          /* of the transaction in flight */
    uint8_t             tid[12];
    uint8_t             msg[TL_MSG_MAX];
    size_t              msg_len;
    int                 tries;
    int64_t             deadline;        /* 0: nothing in flight */

    char                username[64];
    char                password[64];
    char                realm[128];
    char                nonce[256];
    uint8_t             key[16];         /* MD5(username:realm:password) */
    int                 have_key;

    struct sockaddr_in  relay;
    uint16_t            channel;

    uint32_t            seq;             /* next sequence number to send */
    uint64_t            sent;
    uint64_t            recv_up;         /* arrived at the peer */
    uint64_t            echoed;          /* sent back by the peer */
    uint64_t            recv_down;       /* arrived back at the client */
    int64_t             last_up;         /* arrival time at the peer */
    int64_t             max_gap;
    int64_t             next_probe;
    int                 probing;
    int                 reallocs;
    int                 error;           /* last STUN error code */
} tl_stream_t;


typedef struct {
    uint64_t            us[TL_HIST_US];
    uint64_t            ms[TL_HIST_MS];
    uint64_t            over;
    uint64_t            n;
    int64_t             max;
} tl_hist_t;


static int tl_read_cpu(pid_t pid, long *ticks);
static void tl_hist_add(tl_hist_t *h, int64_t ns);
static double tl_hist_pct(tl_hist_t *h, double p);


static struct sockaddr_in   tl_server;
static struct sockaddr_in   tl_peer_addr;
static int                  tl_peer_fd;
static int                  tl_epfd;
static const char          *tl_secret = "bench-turn-secret";
static const char          *tl_user = "bench";
static int                  tl_streams = 100;
static int                  tl_size = 160;
static int                  tl_rate = 50;
static double               tl_duration = 10;
static int                  tl_echo;
static int                  tl_direct;
static int64_t              tl_probe;
static int64_t              tl_quantum = 200000;
static struct in_addr       tl_client_addr;
static int                  tl_verbose;
static pid_t                tl_cpu_pids[8];
static int                  tl_ncpu_pids;

static tl_stream_t         *tl_s;
static tl_hist_t            tl_hist_up;
static tl_hist_t            tl_hist_down;
static int                  tl_in_flight;
static uint64_t             tl_gen_drops;
static uint64_t             tl_bad;
static int                  tl_errors[700];
static volatile sig_atomic_t  tl_stop;
static uint32_t             tl_crc_table[256];


static int64_t
tl_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static void
tl_fatal(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fprintf(stderr, "turnload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);

    exit(2);
}


static void
tl_on_signal(int signo)
{
    tl_stop = 1;
}


/* STUN messages */

static void
tl_crc_init(void)
{
    uint32_t  c;
    int       i, k;

    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        tl_crc_table[i] = c;
    }
}


static uint32_t
tl_crc32(const uint8_t *p, size_t len)
{
    uint32_t  c;

    c = 0xFFFFFFFF;

    while (len--) {
        c = tl_crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    }

    return c ^ 0xFFFFFFFF;
}


static void
tl_put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xFF;
}


static void
tl_put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = (v >> 16) & 0xFF;
    p[2] = (v >> 8) & 0xFF;
    p[3] = v & 0xFF;
}


static uint16_t
tl_get16(const uint8_t *p)
{
    return (uint16_t) (p[0] << 8 | p[1]);
}


static uint32_t
tl_get32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16
           | (uint32_t) p[2] << 8 | p[3];
}


static size_t
tl_begin(tl_stream_t *s, uint16_t method)
{
    s->method = method;
    RAND_bytes(s->tid, sizeof(s->tid));

    tl_put16(s->msg, method);
    tl_put16(s->msg + 2, 0);
    tl_put32(s->msg + 4, TL_COOKIE);
    memcpy(s->msg + 8, s->tid, 12);

    return 20;
}


static size_t
tl_attr(tl_stream_t *s, size_t len, uint16_t type, const void *v,
    size_t vlen)
{
    size_t  pad;

    pad = (4 - vlen % 4) % 4;

    if (len + 4 + vlen + pad > TL_MSG_MAX) {
        tl_fatal("message too long");
    }

    tl_put16(s->msg + len, type);
    tl_put16(s->msg + len + 2, vlen);
    memcpy(s->msg + len + 4, v, vlen);
    memset(s->msg + len + 4 + vlen, 0, pad);

    len += 4 + vlen + pad;
    tl_put16(s->msg + 2, len - 20);

    return len;
}


static size_t
tl_attr_addr(tl_stream_t *s, size_t len, uint16_t type,
    struct sockaddr_in *sin)
{
    uint8_t  v[8];

    v[0] = 0;
    v[1] = 1;
    tl_put16(v + 2, ntohs(sin->sin_port) ^ (TL_COOKIE >> 16));
    tl_put32(v + 4, ntohl(sin->sin_addr.s_addr) ^ TL_COOKIE);

    return tl_attr(s, len, type, v, 8);
}


/* USERNAME, REALM, NONCE, MESSAGE-INTEGRITY and FINGERPRINT */

static size_t
tl_auth(tl_stream_t *s, size_t len)
{
    uint8_t       fp[4];
    unsigned int  mlen;

    len = tl_attr(s, len, TL_ATTR_USERNAME, s->username,
                  strlen(s->username));
    len = tl_attr(s, len, TL_ATTR_REALM, s->realm, strlen(s->realm));
    len = tl_attr(s, len, TL_ATTR_NONCE, s->nonce, strlen(s->nonce));

    /* the length covers MESSAGE-INTEGRITY when it is computed */
    tl_put16(s->msg + 2, len - 20 + 24);
    tl_put16(s->msg + len, TL_ATTR_INTEGRITY);
    tl_put16(s->msg + len + 2, 20);
    HMAC(EVP_sha1(), s->key, 16, s->msg, len, s->msg + len + 4, &mlen);
    len += 24;

    tl_put16(s->msg + 2, len - 20 + 8);
    tl_put32(fp, tl_crc32(s->msg, len) ^ 0x5354554e);

    return tl_attr(s, len, TL_ATTR_FINGERPRINT, fp, 4);
}


static void
tl_make_key(tl_stream_t *s)
{
    char          buf[512];
    int           n;
    unsigned int  klen;

    n = snprintf(buf, sizeof(buf), "%s:%s:%s", s->username, s->realm,
                 s->password);

    EVP_Digest(buf, n, s->key, &klen, EVP_md5(), NULL);
    s->have_key = 1;
}


static void
tl_transmit(tl_stream_t *s)
{
    if (send(s->fd, s->msg, s->msg_len, 0) < 0 && errno != EAGAIN
        && errno != ECONNREFUSED)
    {
        tl_fatal("send: %s", strerror(errno));
    }
}


static void
tl_request(tl_stream_t *s, size_t len)
{
    if (s->deadline == 0) {
        tl_in_flight++;
    }

    s->msg_len = len;
    s->tries = 1;
    s->deadline = tl_now() + TL_RTO_NS;

    tl_transmit(s);
}


static void
tl_done(tl_stream_t *s)
{
    if (s->deadline) {
        tl_in_flight--;
        s->deadline = 0;
    }
}


static void
tl_send_allocate(tl_stream_t *s)
{
    uint8_t  transport[4] = { 17, 0, 0, 0 };
    size_t   len;

    len = tl_begin(s, TL_ALLOCATE);
    len = tl_attr(s, len, TL_ATTR_TRANSPORT, transport, 4);

    if (s->have_key) {
        s->state = TL_ALLOC_AUTH;
        len = tl_auth(s, len);

    } else {
        s->state = TL_ALLOC;
    }

    tl_request(s, len);
}


static void
tl_send_permission(tl_stream_t *s)
{
    size_t  len;

    s->state = TL_PERMISSION;

    len = tl_begin(s, TL_CREATE_PERMISSION);
    len = tl_attr_addr(s, len, TL_ATTR_PEER, &tl_peer_addr);
    len = tl_auth(s, len);

    tl_request(s, len);
}


static void
tl_send_bind(tl_stream_t *s)
{
    uint8_t  ch[4];
    size_t   len;

    s->state = TL_BIND;

    tl_put16(ch, s->channel);
    tl_put16(ch + 2, 0);

    len = tl_begin(s, TL_CHANNEL_BIND);
    len = tl_attr(s, len, TL_ATTR_CHANNEL, ch, 4);
    len = tl_attr_addr(s, len, TL_ATTR_PEER, &tl_peer_addr);
    len = tl_auth(s, len);

    tl_request(s, len);
}


static void
tl_send_refresh(tl_stream_t *s, uint32_t lifetime)
{
    uint8_t  v[4];
    size_t   len;

    tl_put32(v, lifetime);

    len = tl_begin(s, TL_REFRESH);
    len = tl_attr(s, len, TL_ATTR_LIFETIME, v, 4);
    len = tl_auth(s, len);

    tl_request(s, len);
}


/* sends the transaction in flight again, with a new nonce */
static void
tl_resend(tl_stream_t *s)
{
    switch (s->method) {

    case TL_ALLOCATE:
        tl_send_allocate(s);
        break;

    case TL_CREATE_PERMISSION:
        tl_send_permission(s);
        break;

    case TL_CHANNEL_BIND:
        tl_send_bind(s);
        break;

    default:
        tl_send_refresh(s, s->state == TL_FREE ? 0 : 600);
        break;
    }
}


static void
tl_fail(tl_stream_t *s, int code)
{
    tl_done(s);

    s->state = TL_FAILED;
    s->error = code;

    if (code >= 0 && code < 700) {
        tl_errors[code]++;
    }
}


/* allocates again: the server forgot the allocation */
static void
tl_reallocate(tl_stream_t *s)
{
    tl_done(s);

    s->probing = 0;
    s->have_key = 0;
    s->reallocs++;

    tl_send_allocate(s);
}


static void
tl_on_stun(tl_stream_t *s, const uint8_t *p, size_t n)
{
    size_t    pos, alen;
    uint16_t  type, at;
    int       code, have_relay;
    char     *dst;

    if (n < 20 || tl_get32(p + 4) != TL_COOKIE
        || (size_t) tl_get16(p + 2) + 20 != n)
    {
        tl_bad++;
        return;
    }

    if (s->deadline == 0 || memcmp(p + 8, s->tid, 12) != 0) {
        return;                       /* a late answer to a retransmit */
    }

    type = tl_get16(p);

    if ((type & ~TL_CLASS_MASK) != s->method) {
        tl_bad++;
        return;
    }

    code = 0;
    have_relay = 0;

    for (pos = 20; pos + 4 <= n; pos += 4 + alen + (4 - alen % 4) % 4) {
        at = tl_get16(p + pos);
        alen = tl_get16(p + pos + 2);

        if (pos + 4 + alen > n) {
            tl_bad++;
            return;
        }

        dst = NULL;

        switch (at) {

        case TL_ATTR_ERROR_CODE:
            if (alen >= 4) {
                code = (p[pos + 6] & 7) * 100 + p[pos + 7];
            }
            break;

        case TL_ATTR_REALM:
            dst = s->realm;
            break;

        case TL_ATTR_NONCE:
            dst = s->nonce;
            break;

        case TL_ATTR_RELAYED:
            if (alen >= 8 && p[pos + 5] == 1) {
                s->relay.sin_family = AF_INET;
                s->relay.sin_port =
                    htons(tl_get16(p + pos + 6) ^ (TL_COOKIE >> 16));
                s->relay.sin_addr.s_addr =
                    htonl(tl_get32(p + pos + 8) ^ TL_COOKIE);
                have_relay = 1;
            }
            break;
        }

        if (dst && alen < 128) {
            memcpy(dst, p + pos + 4, alen);
            dst[alen] = '\0';
        }
    }

    if ((type & TL_CLASS_MASK) == TL_CLASS_ERROR) {

        if (code == 401 && s->state == TL_ALLOC) {
            tl_done(s);
            tl_make_key(s);
            tl_send_allocate(s);
            return;
        }

        if (code == 438) {
            /* stale nonce: the answer carries a new one */
            tl_done(s);
            tl_resend(s);
            return;
        }

        if (code == 437 && s->probing) {
            tl_reallocate(s);
            return;
        }

        if (s->state == TL_FREE) {
            tl_done(s);
            s->state = TL_DONE;
            return;
        }

        if (tl_verbose) {
            fprintf(stderr, "turnload: stream %d: method 0x%x: error %d\n",
                    (int) (s - tl_s), s->method, code);
        }

        tl_fail(s, code);
        return;
    }

    if ((type & TL_CLASS_MASK) != TL_CLASS_SUCCESS) {
        tl_bad++;
        return;
    }

    tl_done(s);

    if (s->probing) {
        s->probing = 0;
        return;
    }

    switch (s->state) {

    case TL_ALLOC:
    case TL_ALLOC_AUTH:
        if (!have_relay) {
            tl_fail(s, 0);
            return;
        }
        tl_send_permission(s);
        break;

    case TL_PERMISSION:
        tl_send_bind(s);
        break;

    case TL_BIND:
        s->state = TL_READY;
        break;

    case TL_FREE:
        s->state = TL_DONE;
        break;

    default:
        break;
    }
}


static void
tl_timeouts(int64_t now)
{
    int           i;
    tl_stream_t  *s;

    for (i = 0; i < tl_streams; i++) {
        s = &tl_s[i];

        if (s->deadline == 0 || s->deadline > now) {
            continue;
        }

        if (s->tries < TL_TRIES) {
            s->tries++;
            s->deadline = now + TL_RTO_NS;
            tl_transmit(s);
            continue;
        }

        if (s->probing) {
            /* no answer at all: as if the allocation were gone */
            tl_reallocate(s);
            continue;
        }

        if (s->state == TL_FREE) {
            tl_done(s);
            s->state = TL_DONE;
            continue;
        }

        tl_fail(s, 0);
    }
}


/* the media */

static void
tl_on_payload(const uint8_t *p, size_t n, int64_t rx, int up)
{
    uint32_t      id;
    int64_t       ts;
    tl_stream_t  *s;

    if (n < TL_PAYLOAD_MIN || tl_get32(p) != TL_MAGIC) {
        tl_bad++;
        return;
    }

    id = tl_get32(p + 4);

    if (id >= (uint32_t) tl_streams) {
        tl_bad++;
        return;
    }

    s = &tl_s[id];
    memcpy(&ts, p + 16, 8);

    if (up) {
        if (s->last_up && rx - s->last_up > s->max_gap) {
            s->max_gap = rx - s->last_up;
        }

        s->last_up = rx;
        s->recv_up++;
        tl_hist_add(&tl_hist_up, rx - ts);

    } else {
        s->recv_down++;
        tl_hist_add(&tl_hist_down, rx - ts);
    }
}


static int64_t
tl_rx_time(struct msghdr *mh, int64_t fallback)
{
    struct cmsghdr   *cm;
    struct timespec   ts;
    uint32_t          drops;

    for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {

        if (cm->cmsg_level != SOL_SOCKET) {
            continue;
        }

        if (cm->cmsg_type == SO_TIMESTAMPNS) {
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            fallback = (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;

        } else if (cm->cmsg_type == SO_RXQ_OVFL) {
            /* datagrams the kernel dropped on this socket, so far */
            memcpy(&drops, CMSG_DATA(cm), 4);
            if (drops > tl_gen_drops) {
                tl_gen_drops = drops;
            }
        }
    }

    return fallback;
}


static uint8_t              tl_rx_buf[TL_BATCH][2048];
static uint8_t              tl_rx_ctl[TL_BATCH][128];
static struct sockaddr_in   tl_rx_from[TL_BATCH];
static struct iovec         tl_rx_iov[TL_BATCH];
static struct mmsghdr       tl_rx_mm[TL_BATCH];

static uint8_t              tl_tx_buf[TL_BATCH][TL_PAYLOAD_MAX];
static struct sockaddr_in   tl_tx_to[TL_BATCH];
static struct iovec         tl_tx_iov[TL_BATCH];
static struct mmsghdr       tl_tx_mm[TL_BATCH];


static int
tl_recv_batch(int fd)
{
    int  i, n;

    for (i = 0; i < TL_BATCH; i++) {
        tl_rx_iov[i].iov_base = tl_rx_buf[i];
        tl_rx_iov[i].iov_len = sizeof(tl_rx_buf[i]);
        memset(&tl_rx_mm[i].msg_hdr, 0, sizeof(struct msghdr));
        tl_rx_mm[i].msg_hdr.msg_name = &tl_rx_from[i];
        tl_rx_mm[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
        tl_rx_mm[i].msg_hdr.msg_iov = &tl_rx_iov[i];
        tl_rx_mm[i].msg_hdr.msg_iovlen = 1;
        tl_rx_mm[i].msg_hdr.msg_control = tl_rx_ctl[i];
        tl_rx_mm[i].msg_hdr.msg_controllen = sizeof(tl_rx_ctl[i]);
    }

    n = recvmmsg(fd, tl_rx_mm, TL_BATCH, MSG_DONTWAIT, NULL);

    if (n < 0 && errno != EAGAIN && errno != ECONNREFUSED) {
        tl_fatal("recvmmsg: %s", strerror(errno));
    }

    return n;
}


static void
tl_send_echo(int n)
{
    int  i, k;

    for (i = 0; i < n; i += k) {
        k = sendmmsg(tl_peer_fd, tl_tx_mm + i, n - i, 0);

        if (k < 0) {
            if (errno == EAGAIN || errno == ECONNREFUSED) {
                return;
            }
            tl_fatal("sendmmsg: %s", strerror(errno));
        }
    }
}


/* datagrams relayed to the peer, each sent back with -e */
static void
tl_on_peer(void)
{
    int       i, n, k;
    int64_t   now, rx, ts;
    uint32_t  id;

    for ( ;; ) {
        n = tl_recv_batch(tl_peer_fd);
        if (n <= 0) {
            return;
        }

        now = tl_now();
        k = 0;

        for (i = 0; i < n; i++) {
            rx = tl_rx_time(&tl_rx_mm[i].msg_hdr, now);
            tl_on_payload(tl_rx_buf[i], tl_rx_mm[i].msg_len, rx, 1);

            if (!tl_echo || tl_rx_mm[i].msg_len < TL_PAYLOAD_MIN
                || tl_rx_mm[i].msg_len > TL_PAYLOAD_MAX)
            {
                continue;
            }

            id = tl_get32(tl_rx_buf[i] + 4);
            if (id >= (uint32_t) tl_streams) {
                continue;
            }

            tl_s[id].echoed++;

            memcpy(tl_tx_buf[k], tl_rx_buf[i], tl_rx_mm[i].msg_len);
            ts = tl_now();
            memcpy(tl_tx_buf[k] + 16, &ts, 8);

            tl_tx_to[k] = tl_rx_from[i];
            tl_tx_iov[k].iov_base = tl_tx_buf[k];
            tl_tx_iov[k].iov_len = tl_rx_mm[i].msg_len;
            memset(&tl_tx_mm[k].msg_hdr, 0, sizeof(struct msghdr));
            tl_tx_mm[k].msg_hdr.msg_name = &tl_tx_to[k];
            tl_tx_mm[k].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
            tl_tx_mm[k].msg_hdr.msg_iov = &tl_tx_iov[k];
            tl_tx_mm[k].msg_hdr.msg_iovlen = 1;
            k++;
        }

        if (k) {
            tl_send_echo(k);
        }

        if (n < TL_BATCH) {
            return;
        }
    }
}


/* what the server sends a client: STUN answers and ChannelData */
static void
tl_on_client(tl_stream_t *s)
{
    int       i, n;
    size_t    len;
    int64_t   now, rx;
    uint8_t  *p;

    for ( ;; ) {
        n = tl_recv_batch(s->fd);
        if (n <= 0) {
            return;
        }

        now = tl_now();

        for (i = 0; i < n; i++) {
            p = tl_rx_buf[i];
            len = tl_rx_mm[i].msg_len;
            rx = tl_rx_time(&tl_rx_mm[i].msg_hdr, now);

            if (tl_direct) {
                tl_on_payload(p, len, rx, 0);

            } else if (len >= 4 && p[0] >= 0x40 && p[0] < 0x80) {
                if ((size_t) tl_get16(p + 2) + 4 > len) {
                    tl_bad++;
                    continue;
                }
                tl_on_payload(p + 4, tl_get16(p + 2), rx, 0);

            } else if (len >= 20 && (p[0] & 0xC0) == 0) {
                tl_on_stun(s, p, len);

            } else {
                tl_bad++;
            }
        }

        if (n < TL_BATCH) {
            return;
        }
    }
}


static int
tl_poll(int64_t timeout_ns)
{
    int                 i, n;
    uint32_t            id;
    struct timespec     ts;
    struct epoll_event  ev[256];

    if (timeout_ns < 0) {
        timeout_ns = 0;
    }

    ts.tv_sec = timeout_ns / 1000000000;
    ts.tv_nsec = timeout_ns % 1000000000;

    n = epoll_pwait2(tl_epfd, ev, 256, &ts, NULL);

    if (n < 0) {
        if (errno == EINTR) {
            return 0;
        }
        tl_fatal("epoll_pwait2: %s", strerror(errno));
    }

    for (i = 0; i < n; i++) {
        id = ev[i].data.u32;

        if (id == 0) {
            tl_on_peer();

        } else {
            tl_on_client(&tl_s[id - 1]);
        }
    }

    return n;
}


static void
tl_sleep(int64_t ns)
{
    struct timespec  ts;

    ts.tv_sec = ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;

    while (!tl_stop && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        /* void */
    }
}


/* reads all that waits, without blocking */
static void
tl_drain(void)
{
    int  i;

    for (i = 0; i < 1000; i++) {
        if (tl_poll(0) < 256) {
            return;
        }
    }
}


static void
tl_send_media(tl_stream_t *s, uint8_t *buf, int64_t now)
{
    ssize_t   n;
    uint32_t  id;
    size_t    off;

    id = s - tl_s;
    off = tl_direct ? 0 : 4;

    tl_put16(buf, s->channel);
    tl_put16(buf + 2, tl_size);
    tl_put32(buf + off, TL_MAGIC);
    tl_put32(buf + off + 4, id);
    tl_put32(buf + off + 8, s->seq++);
    now = tl_now();
    memcpy(buf + off + 16, &now, 8);

    n = send(s->fd, buf, off + tl_size, 0);

    if (n < 0 && errno != EAGAIN && errno != ECONNREFUSED) {
        tl_fatal("send: %s", strerror(errno));
    }

    s->sent++;
}


/* results */

static void
tl_hist_add(tl_hist_t *h, int64_t ns)
{
    int64_t  us;

    if (ns < 0) {
        ns = 0;
    }

    us = ns / 1000;

    if (us < TL_HIST_US) {
        h->us[us]++;

    } else if (us / 1000 < TL_HIST_MS) {
        h->ms[us / 1000]++;

    } else {
        h->over++;
    }

    if (ns > h->max) {
        h->max = ns;
    }

    h->n++;
}


/* the percentile in microseconds */
static double
tl_hist_pct(tl_hist_t *h, double p)
{
    uint64_t  want, seen;
    int       i;

    if (h->n == 0) {
        return 0;
    }

    want = (uint64_t) (p / 100 * h->n);
    if (want >= h->n) {
        want = h->n - 1;
    }

    seen = 0;

    for (i = 0; i < TL_HIST_US; i++) {
        seen += h->us[i];
        if (seen > want) {
            return i + 0.5;
        }
    }

    for (i = 0; i < TL_HIST_MS; i++) {
        seen += h->ms[i];
        if (seen > want) {
            return i * 1000.0 + 500;
        }
    }

    return h->max / 1000.0;
}


static int
tl_read_cpu(pid_t pid, long *ticks)
{
    char   buf[1024], path[64], *p;
    int    fd, i;
    long   ut, st;
    ssize_t  n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);

    fd = open(path, O_RDONLY);
    if (fd < 0) {
        return -1;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);

    if (n <= 0) {
        return -1;
    }

    buf[n] = '\0';

    /* the name may hold spaces: fields are counted after its ')' */
    p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }

    for (i = 2; i < 14 && p; i++) {
        p = strchr(p + 1, ' ');
    }

    if (p == NULL || sscanf(p, " %ld %ld", &ut, &st) != 2) {
        return -1;
    }

    *ticks = ut + st;

    return 0;
}


static long
tl_cpu_ticks(void)
{
    long  sum, t;
    int   i;

    sum = 0;

    for (i = 0; i < tl_ncpu_pids; i++) {
        if (tl_read_cpu(tl_cpu_pids[i], &t) == 0) {
            sum += t;
        }
    }

    return sum;
}


static double
tl_self_cpu(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);

    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


/* sockets */

static int
tl_udp_socket(int rcvbuf, in_addr_t addr)
{
    int                 fd, on;
    struct sockaddr_in  sin;

    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        tl_fatal("socket: %s", strerror(errno));
    }

    /* a bigger buffer than the default, so this side does not drop */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(int))
        < 0)
    {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(int));
    }

    on = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = addr;

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) < 0) {
        tl_fatal("bind: %s", strerror(errno));
    }

    return fd;
}


static void
tl_add_fd(int fd, uint32_t id)
{
    struct epoll_event  ev;

    ev.events = EPOLLIN;
    ev.data.u32 = id;

    if (epoll_ctl(tl_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        tl_fatal("epoll_ctl: %s", strerror(errno));
    }
}


static void
tl_parse_addr(const char *text, struct sockaddr_in *sin)
{
    char        host[64];
    const char *colon;

    colon = strrchr(text, ':');
    if (colon == NULL || (size_t) (colon - text) >= sizeof(host)) {
        tl_fatal("bad address \"%s\", want IP:PORT", text);
    }

    memcpy(host, text, colon - text);
    host[colon - text] = '\0';

    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(atoi(colon + 1));

    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
        tl_fatal("bad address \"%s\"", text);
    }
}


static void
tl_credentials(tl_stream_t *s, int i)
{
    uint8_t       mac[20];
    unsigned int  mlen;

    snprintf(s->username, sizeof(s->username), "%ld:%s%d",
             (long) time(NULL) + 86400, tl_user, i);

    HMAC(EVP_sha1(), tl_secret, strlen(tl_secret),
         (uint8_t *) s->username, strlen(s->username), mac, &mlen);
    EVP_EncodeBlock((uint8_t *) s->password, mac, mlen);
}


static void
tl_usage(void)
{
    fprintf(stderr,
        "usage: turnload -s IP:PORT [options]\n"
        "  -s IP:PORT  the TURN server (UDP)\n"
        "  -a IP       the clients' address (random in 127.0.0.0/8)\n"
        "  -k SECRET   the shared secret (bench-turn-secret)\n"
        "  -u NAME     user name prefix (bench)\n"
        "  -n N        streams, one allocation each (100)\n"
        "  -b BYTES    payload size (160)\n"
        "  -r PPS      packets per second per stream (50)\n"
        "  -d SECONDS  how long the streams run (10)\n"
        "  -e          the peer sends every packet back through the relay\n"
        "  -D          direct: no server, straight to the peer socket\n"
        "  -P MS       Refresh every MS ms; allocate again on 437\n"
        "  -q US       packets due within US us are sent together (200)\n"
        "  -c PID      count this process's CPU time (repeatable)\n"
        "  -v          tell refusals on stderr\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int            c, i, ready, failed, freed, reallocs, fd;
    int64_t        start, now, t0, t_end, interval, slot_ns, next, late;
    int64_t        max_gap, drain_end, deadline;
    uint64_t       slot, total_slots, sent, recv_up, recv_down, echoed;
    uint64_t       lost, relayed, gaps_over, stalled;
    long           cpu0, cpu1, hz;
    double         self0, self1, secs, cpu_s, loss_pct;
    const char    *server;
    uint8_t        buf[4 + TL_PAYLOAD_MAX];
    socklen_t      alen;
    struct rlimit  rl;
    tl_stream_t   *s;

    server = NULL;

    while ((c = getopt(argc, argv, "s:a:k:u:n:b:r:d:eDP:q:c:v")) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 'a':
            if (inet_pton(AF_INET, optarg, &tl_client_addr) != 1) {
                tl_fatal("bad address \"%s\"", optarg);
            }
            break;
        case 'k': tl_secret = optarg; break;
        case 'u': tl_user = optarg; break;
        case 'n': tl_streams = atoi(optarg); break;
        case 'b': tl_size = atoi(optarg); break;
        case 'r': tl_rate = atoi(optarg); break;
        case 'd': tl_duration = atof(optarg); break;
        case 'e': tl_echo = 1; break;
        case 'D': tl_direct = 1; break;
        case 'P': tl_probe = atoll(optarg) * 1000000; break;
        case 'q': tl_quantum = atoll(optarg) * 1000; break;
        case 'c':
            if (tl_ncpu_pids == 8) {
                tl_fatal("at most 8 -c");
            }
            tl_cpu_pids[tl_ncpu_pids++] = atoi(optarg);
            break;
        case 'v': tl_verbose = 1; break;
        default: tl_usage();
        }
    }

    if ((server == NULL && !tl_direct) || tl_streams < 1
        || tl_streams > 60000 || tl_rate < 1 || tl_duration <= 0
        || tl_size < TL_PAYLOAD_MIN || tl_size > TL_PAYLOAD_MAX)
    {
        tl_usage();
    }

    if (server) {
        tl_parse_addr(server, &tl_server);
    }

    /*
     * A new loopback address for each run's clients: a server may keep a
     * freed allocation's 5-tuple for a while (coturn does) and would
     * refuse a new client that got the same port with 437.
     */
    if (tl_client_addr.s_addr == 0) {
        RAND_bytes((uint8_t *) &tl_client_addr.s_addr, 4);
        tl_client_addr.s_addr = htonl(0x7F000000
                                      | (ntohl(tl_client_addr.s_addr)
                                         % 0xFFFFFD + 2));
    }

    /* two sockets per stream at most, plus a few */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0
        && rl.rlim_cur < (rlim_t) tl_streams + 64)
    {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    signal(SIGINT, tl_on_signal);
    signal(SIGTERM, tl_on_signal);
    signal(SIGPIPE, SIG_IGN);

    tl_crc_init();

    tl_s = calloc(tl_streams, sizeof(tl_stream_t));
    if (tl_s == NULL) {
        tl_fatal("no memory");
    }

    tl_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (tl_epfd < 0) {
        tl_fatal("epoll_create1: %s", strerror(errno));
    }

    tl_peer_fd = tl_udp_socket(32 * 1024 * 1024, htonl(INADDR_LOOPBACK));
    alen = sizeof(tl_peer_addr);
    getsockname(tl_peer_fd, (struct sockaddr *) &tl_peer_addr, &alen);
    tl_add_fd(tl_peer_fd, 0);

    for (i = 0; i < tl_streams; i++) {
        s = &tl_s[i];

        fd = tl_udp_socket(tl_echo ? 1024 * 1024 : 256 * 1024,
                           tl_client_addr.s_addr);

        if (connect(fd, (struct sockaddr *)
                        (tl_direct ? &tl_peer_addr : &tl_server),
                    sizeof(struct sockaddr_in))
            < 0)
        {
            tl_fatal("connect: %s", strerror(errno));
        }

        s->fd = fd;
        s->channel = 0x4000 + i % 0x1000;
        tl_credentials(s, i);
        tl_add_fd(fd, i + 1);

        if (tl_direct) {
            s->state = TL_READY;
        }
    }

    /* allocations, a window of them at a time */

    start = tl_now();
    deadline = start + 60 * 1000000000LL;
    next = 0;

    while (!tl_stop) {
        while (next < tl_streams && tl_in_flight < TL_WINDOW) {
            if (!tl_direct) {
                tl_send_allocate(&tl_s[next]);
            }
            next++;
        }

        if (next == tl_streams && tl_in_flight == 0) {
            break;
        }

        now = tl_now();

        if (now > deadline) {
            break;
        }

        tl_poll(50 * 1000000);
        tl_timeouts(tl_now());
    }

    ready = 0;
    for (i = 0; i < tl_streams; i++) {
        ready += tl_s[i].state == TL_READY;
    }

    printf("setup: %d of %d allocations ready in %.0f ms\n", ready,
           tl_streams, (tl_now() - start) / 1e6);
    fflush(stdout);

    /* the streams; stream i sends at t0 + (k * N + i) * interval / N */

    interval = 1000000000LL / tl_rate;
    slot_ns = interval / tl_streams;
    if (slot_ns == 0) {
        slot_ns = 1;
    }

    total_slots = (uint64_t) (tl_duration * tl_rate) * tl_streams;

    cpu0 = tl_cpu_ticks();
    self0 = tl_self_cpu();

    t0 = tl_now() + 10000000;
    t_end = t0 + (int64_t) (tl_duration * 1e9);
    slot = 0;
    late = 0;

    for (i = 0; i < tl_streams; i++) {
        tl_s[i].next_probe = t0 + (tl_probe ? tl_probe * i / tl_streams : 0);
    }

    memset(buf, 0, sizeof(buf));

    while (!tl_stop && slot < total_slots) {
        now = tl_now();

        while (slot < total_slots) {
            next = t0 + (int64_t) (slot / tl_streams) * interval
                   + (int64_t) (slot % tl_streams) * slot_ns;

            if (next > now) {
                break;
            }

            if (now - next > late) {
                late = now - next;
            }

            s = &tl_s[slot % tl_streams];

            if (s->state == TL_READY || s->state == TL_ALLOC
                || s->state == TL_ALLOC_AUTH || s->state == TL_PERMISSION
                || s->state == TL_BIND)
            {
                tl_send_media(s, buf, now);
            }

            if (tl_probe && s->state == TL_READY && !s->probing
                && now >= s->next_probe)
            {
                s->probing = 1;
                s->next_probe = now + tl_probe;
                tl_send_refresh(s, 600);
            }

            slot++;
        }

        if (slot >= total_slots) {
            break;
        }

        /*
         * Waking for every packet would cost more than sending or taking
         * it: the packets due within a quantum go out together, and what
         * arrived meanwhile is read in one go after a sleep (the kernel's
         * receive times keep the latencies true).
         */
        tl_sleep(next - now < tl_quantum ? tl_quantum : next - now);
        tl_drain();

        if (tl_in_flight) {
            tl_timeouts(tl_now());
        }
    }

    t_end = tl_now();

    /* what is still on its way */

    drain_end = t_end + 500000000;

    while (!tl_stop) {
        now = tl_now();
        if (now >= drain_end) {
            break;
        }
        tl_sleep(drain_end - now < tl_quantum ? drain_end - now : tl_quantum);
        tl_drain();
    }

    cpu1 = tl_cpu_ticks();
    self1 = tl_self_cpu();

    /* the allocations are given back, so the next run finds free ports */

    if (!tl_direct) {
        deadline = tl_now() + 3 * 1000000000LL;
        next = 0;

        for (i = 0; i < tl_streams; i++) {
            tl_done(&tl_s[i]);
            tl_s[i].probing = 0;
        }

        while (tl_now() < deadline) {
            while (next < tl_streams && tl_in_flight < TL_WINDOW) {
                s = &tl_s[next++];

                if (s->state == TL_READY) {
                    s->state = TL_FREE;
                    tl_send_refresh(s, 0);
                }
            }

            if (next == tl_streams && tl_in_flight == 0) {
                break;
            }

            tl_poll(20 * 1000000);
            tl_timeouts(tl_now());
        }
    }

    /* the figures */

    freed = 0;
    sent = recv_up = recv_down = echoed = 0;
    max_gap = 0;
    gaps_over = 0;
    stalled = 0;
    failed = 0;
    reallocs = 0;

    for (i = 0; i < tl_streams; i++) {
        s = &tl_s[i];
        sent += s->sent;
        recv_up += s->recv_up;
        recv_down += s->recv_down;
        echoed += s->echoed;
        failed += s->state == TL_FAILED;
        freed += s->state == TL_DONE;
        reallocs += s->reallocs;

        if (s->max_gap > max_gap) {
            max_gap = s->max_gap;
        }

        /* more than three packets' time without one */
        if (s->max_gap > 3 * interval) {
            gaps_over++;
        }

        /* and never again until the streams stopped */
        if (s->state != TL_FAILED && t_end - s->last_up > 3 * interval) {
            stalled++;
        }
    }

    secs = (t_end - t0) / 1e9;
    relayed = recv_up + recv_down;
    lost = (sent - recv_up) + (echoed - recv_down);
    loss_pct = sent + echoed ? 100.0 * lost / (sent + echoed) : 0;
    hz = sysconf(_SC_CLK_TCK);
    cpu_s = (double) (cpu1 - cpu0) / hz;

    if (!tl_direct) {
        printf("freed: %d of %d allocations\n", freed, ready);
    }

    printf("streams: %d x %d B at %d pps for %.1f s%s%s\n", tl_streams,
           tl_size, tl_rate, secs, tl_echo ? ", echoed" : "",
           tl_direct ? ", direct (no relay)" : "");
    printf("sent %" PRIu64 ", at the peer %" PRIu64 ", echoed %" PRIu64
           ", back %" PRIu64 ", lost %" PRIu64 " (%.3f%%)\n",
           sent, recv_up, echoed, recv_down, lost, loss_pct);
    printf("relayed %.0f packets/s\n", relayed / secs);
    printf("one-way to the peer: p50 %.0f us, p99 %.0f us, max %.0f us\n",
           tl_hist_pct(&tl_hist_up, 50), tl_hist_pct(&tl_hist_up, 99),
           tl_hist_up.max / 1e3);

    if (tl_echo) {
        printf("one-way back: p50 %.0f us, p99 %.0f us, max %.0f us\n",
               tl_hist_pct(&tl_hist_down, 50),
               tl_hist_pct(&tl_hist_down, 99), tl_hist_down.max / 1e3);
    }

    printf("longest gap in a stream: %.1f ms; streams with a gap over "
           "3 packets: %" PRIu64 ", stopped before the end: %" PRIu64
           "; reallocations: %d\n", max_gap / 1e6, gaps_over, stalled,
           reallocs);

    if (tl_ncpu_pids) {
        printf("server CPU: %.2f s, %.2f s per million packets relayed\n",
               cpu_s, relayed ? cpu_s * 1e6 / relayed : 0);
    }

    printf("generator: CPU %.0f%% of a core, sends up to %.1f ms late, "
           "%" PRIu64 " dropped by its own sockets\n",
           100 * (self1 - self0) / secs, late / 1e6, tl_gen_drops);

    for (i = 0; i < 700; i++) {
        if (tl_errors[i]) {
            printf("refused with %d: %d\n", i, tl_errors[i]);
        }
    }

    printf("RESULT ready=%d failed=%d sent=%" PRIu64 " recv_up=%" PRIu64
           " echoed=%" PRIu64 " recv_down=%" PRIu64 " lost=%" PRIu64
           " loss_pct=%.4f pps=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f"
           " p50_down_us=%.0f p99_down_us=%.0f cpu_s=%.2f"
           " cpu_per_m=%.3f max_gap_ms=%.1f gaps=%" PRIu64
           " stalled=%" PRIu64
           " reallocs=%d gen_cpu_pct=%.0f late_ms=%.1f gen_drops=%" PRIu64
           " bad=%" PRIu64 " secs=%.2f\n",
           ready, failed, sent, recv_up, echoed, recv_down, lost, loss_pct,
           relayed / secs, tl_hist_pct(&tl_hist_up, 50),
           tl_hist_pct(&tl_hist_up, 99), tl_hist_up.max / 1e3,
           tl_hist_pct(&tl_hist_down, 50), tl_hist_pct(&tl_hist_down, 99),
           cpu_s, relayed ? cpu_s * 1e6 / relayed : 0, max_gap / 1e6,
           gaps_over, stalled, reallocs, 100 * (self1 - self0) / secs,
           late / 1e6, tl_gen_drops, tl_bad, secs);

    return ready == tl_streams ? 0 : 1;
}
