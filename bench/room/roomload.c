/*
 * roomload: the WebSocket load client of bench/room.sh.
 *
 * One process, one thread, epoll, plain TCP on loopback; client framing
 * written here (RFC 6455: masked frames out, unmasked in, fragments
 * joined, pings answered), OpenSSL only for the handshake's SHA-1 and
 * base64.  It speaks the module's waiting-room protocol (README,
 * "Waiting room and call protocol") with just enough JSON reading to
 * find the fields it needs.
 *
 *   roomload room -p PORT -t TOKENS -D DOCTOR_TOKEN [-R rounds]
 *       Connects one WebSocket per line of TOKENS (patients' tokens) and
 *       sends each a hello; prints "READY ..." when every one has its
 *       welcome and the queue is quiet, then waits for a line on stdin
 *       (the script measures memory meanwhile).  Then the doctor's
 *       console connects and, each round, sends call_next; the patient
 *       who rings accepts at once; the round's figure is the time from
 *       call_next until every other waiting patient of that doctor has
 *       received a queue message with a new position.  The doctor then
 *       hangs up.  The patients may wait for several doctors (each
 *       welcome names the doctor): those of the others must get nothing
 *       in a round, and what they get is counted.  Prints "DONE" and
 *       waits for EOF on stdin before closing everything.
 *
 *       With -q PORT2 -a N the first N patients connect to the nginx on
 *       PORT2 (another node of the same Redis: the node on PORT relays
 *       them), the others and the doctor to PORT.
 *
 *   roomload signal -p PORT -f PAIRS -W PID,PID [-d secs] [-w window]
 *                   [-r rate] [-s size] [-k rounds]
 *       PAIRS has lines "DOCTOR_TOKEN PATIENT_TOKEN": the first half
 *       become calls whose two sides are on different nginx workers, the
 *       second half calls with both sides on one worker (the baseline).
 *       Which worker holds a connection is read from /proc (the workers'
 *       fds and /proc/net/tcp).  Every call is set up through the
 *       protocol (hello, call_next, ring, accept); then, k times each
 *       kind in turn: a paced phase (rate messages/s over all calls of
 *       the kind) and a load phase (each side keeps `window` signals in
 *       flight).  Each signal carries its send time; the receiver's clock
 *       is the same, so the one-way latency is exact.
 *
 *   roomload nchan -p PORT -u SUB_PATH -x PUB_PATH -n SUBSCRIBERS
 *                  [-P publishes] [-s size] [-W PID,PID]
 *       The reference for the room's fan-out: SUBSCRIBERS WebSockets to
 *       an nchan subscriber location (plain WebSocket, every data frame
 *       counted), then `publishes` messages of `size` bytes POSTed one at
 *       a time to PUB_PATH over one keep-alive connection, each once
 *       every subscriber has the one before, and 500 ms of quiet after
 *       every second one (the pace of the room's rounds).  Each
 *       subscriber sends a ping after its handshake, as a patient its
 *       hello.  Prints the deliveries and the workers' CPU meanwhile
 *       (the NCHAN line).
 *
 * Build: cc -O2 -o roomload roomload.c -lcrypto
 */

#define _GNU_SOURCE

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>


#define WS_GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HIST_US       100000            /* 1 us buckets up to 100 ms */
#define MAX_MSG       (64 << 20)


typedef enum {
    C_CONNECTING = 0,
    C_HANDSHAKE,
    C_OPEN,
    C_CLOSED
} conn_state_e;


typedef enum {
    R_NONE = 0,
    R_PATIENT,
    R_DOCTOR,
    R_PUBLISHER                    /* plain HTTP, nchan's publisher */
} conn_role_e;


typedef struct conn_s  conn_t;

struct conn_s {
    int            fd;
    conn_state_e   state;
    conn_role_e    role;
    int            index;          /* patient index, or call index */
    int            worker;         /* 0, 1, or -1 when not known */
    int            port;           /* the nginx it connects to */

    char           key[32];        /* Sec-WebSocket-Key sent */

    char          *in;             /* bytes read, not yet consumed */
    size_t         in_len;
    size_t         in_size;

    char          *msg;            /* a fragmented message being joined */
    size_t         msg_len;
    size_t         msg_size;
    int            msg_op;

    char          *out;            /* bytes the socket did not take */
    size_t         out_len;
    size_t         out_size;
    int            want_out;

    const char    *token;
    char           doctor[32];     /* whose queue, from the welcome */
    int            welcomed;
    int            errors;
    int            close_code;

    /* room */
    long           position;       /* last position received, 0 none */
    long           queue_msgs;
    int            rung;           /* was called in a round */
    int            round_seen;     /* got a new position this round */
    int            round_any;      /* got any queue message this round */

    /* signal */
    conn_t        *peer;
    char           call[64];
    int            in_call;
    long           sent;
    long           received;
};


typedef struct {
    uint32_t       hist[HIST_US + 1];
    uint64_t       count;
    uint64_t       sum_ns;
    uint64_t       max_ns;
} lat_t;


static int             ep;
static const char     *host = "127.0.0.1";
static int             port;
static const char     *path = "/ws";
static struct sockaddr_in  addr;

/* room: the first `away` patients connect to another node, on port2 */
static int             port2;
static int             away;
static struct sockaddr_in  addr2;

static conn_t        **conns;
static int             nconns;
static int             open_conns;

static long            stat_closed;
static long            stat_errors;
static char            first_error[256];

static uint64_t        last_msg_ns;     /* any message received */

static uint32_t        rnd = 2463534242u;

/* the handler for each complete message, set by the mode */
static void          (*on_message)(conn_t *c, char *m, size_t len);
static void          (*on_open)(conn_t *c);
static void          (*on_close)(conn_t *c);

static void http_answers(conn_t *c);


static void
die(const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    fprintf(stderr, "roomload: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}


static uint64_t
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}


static uint32_t
xorshift(void)
{
    rnd ^= rnd << 13;
    rnd ^= rnd >> 17;
    rnd ^= rnd << 5;
    return rnd;
}


static void *
xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}


static void
buf_append(char **b, size_t *len, size_t *size, const char *d, size_t n)
{
    if (*len + n > *size) {
        *size = (*len + n) * 2 < 512 ? 512 : (*len + n) * 2;
        *b = xrealloc(*b, *size);
    }

    memcpy(*b + *len, d, n);
    *len += n;
}


/* CPU ticks (utime + stime) of a process, or of this one */

static long
proc_ticks(int pid)
{
    char   name[64], buf[1024], *p;
    long   ut, st;
    FILE  *f;

    snprintf(name, sizeof(name), "/proc/%d/stat", pid);

    f = fopen(name, "r");
    if (f == NULL) {
        return 0;
    }

    if (fgets(buf, sizeof(buf), f) == NULL) {
        fclose(f);
        return 0;
    }

    fclose(f);

    p = strrchr(buf, ')');
    if (p == NULL
        || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                  "%ld %ld", &ut, &st) != 2)
    {
        return 0;
    }

    return ut + st;
}


/* how often this process slept (waits in epoll_wait, mostly) */

static long
self_sleeps(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);

    return ru.ru_nvcsw;
}


static double
self_cpu(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);

    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}


/* busy ticks of all CPUs, and what processes other than nginx's workers
 * and this one took of them since `since` (ticks) */

static long
all_busy_ticks(void)
{
    long   v[8];
    FILE  *f;
    int    n;

    f = fopen("/proc/stat", "r");
    if (f == NULL) {
        return 0;
    }

    n = fscanf(f, "cpu %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2],
               &v[3], &v[4], &v[5], &v[6], &v[7]);
    fclose(f);

    if (n != 8) {
        return 0;
    }

    return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}


static int  worker_pid[2];

static long
others_ticks(void)
{
    return all_busy_ticks() - proc_ticks(worker_pid[0])
           - proc_ticks(worker_pid[1]) - proc_ticks(getpid());
}


/* output */

static void
conn_close(conn_t *c)
{
    if (c->state == C_CLOSED) {
        return;
    }

    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = C_CLOSED;
    open_conns--;
    stat_closed++;

    if (on_close) {
        on_close(c);
    }
}


static void
conn_want_out(conn_t *c, int on)
{
    struct epoll_event  ev;

    if (c->want_out == on || c->state == C_CLOSED) {
        return;
    }

    c->want_out = on;
    ev.events = EPOLLIN | (on ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}


static void
conn_flush(conn_t *c)
{
    ssize_t  n;

    while (c->out_len) {
        n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                conn_want_out(c, 1);
                return;
            }

            conn_close(c);
            return;
        }

        memmove(c->out, c->out + n, c->out_len - n);
        c->out_len -= n;
    }

    conn_want_out(c, 0);
}


static void
conn_send_raw(conn_t *c, const char *d, size_t n)
{
    ssize_t  w;

    if (c->state == C_CLOSED) {
        return;
    }

    if (c->out_len == 0) {
        w = send(c->fd, d, n, MSG_NOSIGNAL);

        if (w < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c);
                return;
            }
            w = 0;
        }

        d += w;
        n -= w;

        if (n == 0) {
            return;
        }
    }

    buf_append(&c->out, &c->out_len, &c->out_size, d, n);
    conn_want_out(c, 1);
}


/* a client frame: FIN, opcode, masked payload */

static void
ws_send(conn_t *c, int op, const char *d, size_t n)
{
    char      stack[8192], *f;
    size_t    h, i;
    uint32_t  m;
    uint8_t   mask[4];

    f = (n + 14 <= sizeof(stack)) ? stack : xrealloc(NULL, n + 14);

    f[0] = (char) (0x80 | op);

    if (n < 126) {
        f[1] = (char) (0x80 | n);
        h = 2;

    } else if (n < 65536) {
        f[1] = (char) (0x80 | 126);
        f[2] = (char) (n >> 8);
        f[3] = (char) n;
        h = 4;

    } else {
        f[1] = (char) (0x80 | 127);
        for (i = 0; i < 8; i++) {
            f[2 + i] = (char) ((uint64_t) n >> (56 - 8 * i));
        }
        h = 10;
    }

    m = xorshift();
    memcpy(mask, &m, 4);
    memcpy(f + h, mask, 4);
    h += 4;

    for (i = 0; i < n; i++) {
        f[h + i] = d[i] ^ mask[i & 3];
    }

    conn_send_raw(c, f, h + n);

    if (f != stack) {
        free(f);
    }
}


static void
ws_text(conn_t *c, const char *fmt, ...)
{
    char     buf[8192];
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);

    if (n < 0 || (size_t) n >= sizeof(buf)) {
        die("message too long");
    }

    ws_send(c, 0x1, buf, n);
}


/* JSON: the value of "key" at its first occurrence, good enough for the
 * server's own messages (the bench's signal data uses keys the protocol
 * does not) */

static const char *
json_find(const char *m, size_t len, const char *key)
{
    char         pat[64];
    size_t       pl;
    const char  *p, *end;

    pl = snprintf(pat, sizeof(pat), "\"%s\"", key);
    end = m + len;

    for (p = memmem(m, len, pat, pl); p; p = memmem(p, end - p, pat, pl)) {
        p += pl;

        while (p < end && isspace((unsigned char) *p)) {
            p++;
        }

        if (p < end && *p == ':') {
            p++;
            while (p < end && isspace((unsigned char) *p)) {
                p++;
            }
            return p;
        }
    }

    return NULL;
}


static int
json_str(const char *m, size_t len, const char *key, char *out, size_t size)
{
    const char  *p, *end;
    size_t       n;

    p = json_find(m, len, key);
    end = m + len;

    if (p == NULL || p >= end || *p != '"') {
        return -1;
    }

    p++;

    for (n = 0; p < end && *p != '"' && n + 1 < size; p++) {
        out[n++] = *p;
    }

    out[n] = '\0';

    return 0;
}


static int
json_num(const char *m, size_t len, const char *key, long long *v)
{
    const char  *p;

    p = json_find(m, len, key);

    if (p == NULL || !(isdigit((unsigned char) *p) || *p == '-')) {
        return -1;
    }

    *v = strtoll(p, NULL, 10);

    return 0;
}


static void
note_error(conn_t *c, const char *m, size_t len)
{
    c->errors++;
    stat_errors++;

    if (first_error[0] == '\0') {
        snprintf(first_error, sizeof(first_error), "%.*s",
                 (int) (len < 200 ? len : 200), m);
    }
}


/* input */

static void
ws_frame_done(conn_t *c, int op, char *d, size_t n)
{
    if (op == 0x9) {                       /* ping */
        ws_send(c, 0xa, d, n);
        return;
    }

    if (op == 0xa) {
        return;
    }

    if (op == 0x8) {
        c->close_code = n >= 2 ? ((uint8_t) d[0] << 8 | (uint8_t) d[1]) : 1005;
        conn_close(c);
        return;
    }

    last_msg_ns = now_ns();

    if (on_message) {
        on_message(c, d, n);
    }
}


static void
ws_parse(conn_t *c)
{
    uint8_t  *p;
    size_t    need, h, n, i;
    int       fin, op;

    while (c->state == C_OPEN) {
        p = (uint8_t *) c->in;

        if (c->in_len < 2) {
            return;
        }

        fin = p[0] & 0x80;
        op = p[0] & 0x0f;
        n = p[1] & 0x7f;
        h = 2;

        if (p[1] & 0x80) {
            die("masked frame from the server");
        }

        if (n == 126) {
            if (c->in_len < 4) {
                return;
            }
            n = (size_t) p[2] << 8 | p[3];
            h = 4;

        } else if (n == 127) {
            if (c->in_len < 10) {
                return;
            }
            for (n = 0, i = 0; i < 8; i++) {
                n = n << 8 | p[2 + i];
            }
            h = 10;
        }

        if (n > MAX_MSG) {
            die("frame of %zu bytes", n);
        }

        need = h + n;

        if (c->in_len < need) {
            if (c->in_size < need) {
                c->in_size = need;
                c->in = xrealloc(c->in, need);
            }
            return;
        }

        if (op >= 0x8) {
            ws_frame_done(c, op, (char *) p + h, n);

        } else if (op != 0 && fin) {
            ws_frame_done(c, op, (char *) p + h, n);

        } else {
            if (op != 0) {
                c->msg_op = op;
                c->msg_len = 0;
            }

            buf_append(&c->msg, &c->msg_len, &c->msg_size, (char *) p + h,
                       n);

            if (fin) {
                ws_frame_done(c, c->msg_op, c->msg, c->msg_len);
                c->msg_len = 0;
            }
        }

        if (c->state == C_CLOSED) {
            return;
        }

        memmove(c->in, c->in + need, c->in_len - need);
        c->in_len -= need;
    }
}


static void
handshake_send(conn_t *c)
{
    unsigned char  raw[16];
    char           req[1024];
    int            i, n;

    for (i = 0; i < 16; i++) {
        raw[i] = (unsigned char) xorshift();
    }

    EVP_EncodeBlock((unsigned char *) c->key, raw, 16);

    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s:%d\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "\r\n", path, host, c->port, c->key);

    c->state = C_HANDSHAKE;
    conn_send_raw(c, req, n);
}


static int
handshake_check(conn_t *c)
{
    unsigned char  sha[SHA_DIGEST_LENGTH];
    char           cat[128], want[64], *end, *p;
    size_t         hl;

    end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) {
        return c->in_len > 16384 ? -1 : 0;
    }

    hl = end + 4 - c->in;

    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
        note_error(c, c->in, hl);
        return -1;
    }

    snprintf(cat, sizeof(cat), "%s%s", c->key, WS_GUID);
    SHA1((unsigned char *) cat, strlen(cat), sha);
    EVP_EncodeBlock((unsigned char *) want, sha, SHA_DIGEST_LENGTH);

    p = memmem(c->in, hl, want, strlen(want));
    if (p == NULL) {
        note_error(c, "bad Sec-WebSocket-Accept", 24);
        return -1;
    }

    memmove(c->in, c->in + hl, c->in_len - hl);
    c->in_len -= hl;
    c->state = C_OPEN;

    if (on_open) {
        on_open(c);
    }

    return 1;
}


static void
conn_read(conn_t *c)
{
    ssize_t  n;
    int      rc;

    for ( ;; ) {
        if (c->in_size - c->in_len < 16384) {
            c->in_size = c->in_size * 2 + 16384;
            c->in = xrealloc(c->in, c->in_size);
        }

        n = recv(c->fd, c->in + c->in_len, c->in_size - c->in_len, 0);

        if (n == 0) {
            conn_close(c);
            return;
        }

        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                conn_close(c);
            }
            return;
        }

        c->in_len += n;

        if (c->role == R_PUBLISHER) {
            http_answers(c);
            continue;
        }

        if (c->state == C_HANDSHAKE) {
            rc = handshake_check(c);

            if (rc < 0) {
                conn_close(c);
                return;
            }

            if (rc == 0) {
                continue;
            }
        }

        ws_parse(c);

        if (c->state == C_CLOSED) {
            return;
        }

        if ((size_t) n < 16384) {
            return;
        }
    }
}


static conn_t *
conn_open(conn_role_e role, int index)
{
    conn_t              *c;
    int                  fd, one;
    struct epoll_event   ev;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die("socket: %s (raise ulimit -n)", strerror(errno));
    }

    one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    c = calloc(1, sizeof(conn_t));
    if (c == NULL) {
        die("out of memory");
    }

    c->port = (role == R_PATIENT && index >= 0 && index < away) ? port2 : port;

    if (connect(fd, (struct sockaddr *) (c->port == port ? &addr : &addr2),
                sizeof(addr)) < 0
        && errno != EINPROGRESS)
    {
        die("connect: %s", strerror(errno));
    }

    c->fd = fd;
    c->role = role;
    c->index = index;
    c->worker = -1;
    c->state = C_CONNECTING;

    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = c;
    c->want_out = 1;

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        die("epoll_ctl: %s", strerror(errno));
    }

    conns = xrealloc(conns, (nconns + 1) * sizeof(conn_t *));
    conns[nconns++] = c;
    open_conns++;

    return c;
}


static void
conn_event(conn_t *c, uint32_t events)
{
    int        err;
    socklen_t  len;

    if (c->state == C_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            return;
        }

        len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);

        if (err) {
            note_error(c, strerror(err), strlen(strerror(err)));
            conn_close(c);
            return;
        }

        conn_want_out(c, 0);

        if (c->role == R_PUBLISHER) {
            c->state = C_OPEN;
            return;
        }

        handshake_send(c);
        return;
    }

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        conn_read(c);
    }

    if (c->state != C_CLOSED && (events & EPOLLOUT)) {
        conn_flush(c);
    }
}


/* runs the loop for up to ms milliseconds, or until done() says so */

static int  stdin_line;        /* a line arrived on stdin */
static int  stdin_eof;
static int  watch_stdin;

static void
loop(int ms, int (*done)(void))
{
    struct epoll_event  evs[1024];
    uint64_t            end, t;
    int                 n, i, wait;
    char                buf[256];
    ssize_t             r;

    end = now_ns() + (uint64_t) ms * 1000000;

    for ( ;; ) {
        if (done && done()) {
            return;
        }

        t = now_ns();

        if (t >= end) {
            return;
        }

        /* at most 10 ms, so that done() is asked again */
        wait = (end - t) / 1000000 > 10 ? 10 : (int) ((end - t) / 1000000);

        n = epoll_wait(ep, evs, 1024, wait);

        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                r = read(0, buf, sizeof(buf));
                if (r <= 0) {
                    stdin_eof = 1;
                    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
                } else if (memchr(buf, '\n', r)) {
                    stdin_line = 1;
                }
                continue;
            }

            conn_event(evs[i].data.ptr, evs[i].events);
        }
    }
}


static void
stdin_watch(void)
{
    struct epoll_event  ev;

    if (watch_stdin) {
        return;
    }

    ev.events = EPOLLIN;
    ev.data.ptr = NULL;

    if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0) {
        watch_stdin = 1;
    } else {
        stdin_eof = 1;        /* not pollable: /dev/null or a file */
    }
}


static int
stdin_done(void)
{
    return stdin_line || stdin_eof;
}


static void
print_closes(const char *what)
{
    int   i, codes[5000 - 1000 + 1], any = 0, code;

    memset(codes, 0, sizeof(codes));

    for (i = 0; i < nconns; i++) {
        code = conns[i]->close_code;
        if (code >= 1000 && code <= 5000) {
            codes[code - 1000]++;
        }
    }

    for (i = 0; i <= 4000; i++) {
        if (codes[i]) {
            if (!any) {
                printf("%s: connections closed by the server, by close code:",
                       what);
                any = 1;
            }
            printf(" %d x%d", i + 1000, codes[i]);
        }
    }

    if (any) {
        printf("\n");
    }
}


static int
cmp_u64(const void *a, const void *b)
{
    uint64_t  x = *(const uint64_t *) a, y = *(const uint64_t *) b;

    return x < y ? -1 : x > y;
}


static int
read_lines(const char *file, char ***lines)
{
    FILE    *f;
    char     buf[4096], **l = NULL;
    int      n = 0;
    size_t   len;

    f = fopen(file, "r");
    if (f == NULL) {
        die("%s: %s", file, strerror(errno));
    }

    while (fgets(buf, sizeof(buf), f)) {
        len = strlen(buf);
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
            buf[--len] = '\0';
        }
        if (len == 0) {
            continue;
        }
        l = xrealloc(l, (n + 1) * sizeof(char *));
        l[n++] = strdup(buf);
    }

    fclose(f);
    *lines = l;

    return n;
}


/*
 * room
 */

static conn_t   *doctor;
static int       npatients;
static conn_t  **patients;
static int       welcomed;          /* settled: welcome, error or close */
static int       welcomed_ok;
static long      queue_msgs_total;
static long      patient_msgs;      /* every message to a patient */
static size_t    patient_queue_bytes;
static int       concurrency = 256;
static int       started;

static int       round_on;
static uint64_t  round_t0;
static uint64_t *round_times;
static int       round_seen;
static uint64_t *round_any_times;
static int       round_any;
static int       round_expect;
static int       round_rung;
static uint64_t  round_ring;         /* when the ring came */
static char      doctor_call[64];
static int       doctor_in_call;
static int       doctor_ended;
static int       doctor_queue_msgs;
static size_t    doctor_queue_bytes;
static char      doctor_id[32];

/* the patients of other doctors, during a round (they must get nothing) */
static int       round_watch;
static long      others_msgs;
static long      others_queue_msgs;
static int       others_reached;


static void
room_open(conn_t *c)
{
    if (c->role == R_DOCTOR) {
        ws_text(c, "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\"}", c->token);
        return;
    }

    ws_text(c, "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\",\"id\":%d}",
            c->token, c->index);
}


static void
room_message(conn_t *c, char *m, size_t len)
{
    char       type[32], call[64];
    long long  pos;

    if (json_str(m, len, "type", type, sizeof(type)) != 0) {
        note_error(c, m, len);
        return;
    }

    if (c->role == R_DOCTOR) {
        if (strcmp(type, "queue") == 0) {
            doctor_queue_msgs++;
            doctor_queue_bytes = len;

        } else if (strcmp(type, "welcome") == 0) {
            c->welcomed = 1;
            (void) json_str(m, len, "doctor", doctor_id, sizeof(doctor_id));

        } else if (strcmp(type, "call") == 0) {
            if (json_str(m, len, "call", doctor_call, sizeof(doctor_call))
                == 0)
            {
                doctor_in_call = 1;
            }

        } else if (strcmp(type, "ended") == 0) {
            doctor_ended = 1;
            doctor_in_call = 0;

        } else if (strcmp(type, "error") == 0) {
            note_error(c, m, len);
        }

        return;
    }

    patient_msgs++;

    if (round_watch && strcmp(c->doctor, doctor_id) != 0) {
        /* not this doctor's patient: a message to count, nothing more */
        others_msgs++;
        others_queue_msgs += strcmp(type, "queue") == 0;
        others_reached += c->round_any == 0;
        c->round_any = 1;

        if (strcmp(type, "queue") == 0) {
            c->queue_msgs++;
            queue_msgs_total++;
        }

        return;
    }

    if (strcmp(type, "queue") == 0) {
        c->queue_msgs++;
        queue_msgs_total++;
        patient_queue_bytes = len;

        if (json_num(m, len, "position", &pos) != 0) {
            note_error(c, m, len);
            return;
        }

        if (round_on && !c->rung && !c->round_any) {
            c->round_any = 1;
            round_any_times[round_any++] = now_ns() - round_t0;
        }

        if (round_on && !c->rung && !c->round_seen && pos != c->position) {
            c->round_seen = 1;
            round_times[round_seen++] = now_ns() - round_t0;
        }

        c->position = pos;

    } else if (strcmp(type, "welcome") == 0) {
        if (!c->welcomed) {
            (void) json_str(m, len, "doctor", c->doctor, sizeof(c->doctor));
            c->welcomed = 1;
            welcomed++;
            welcomed_ok++;
        }

    } else if (strcmp(type, "ring") == 0) {
        if (json_str(m, len, "call", call, sizeof(call)) == 0) {
            c->rung = 1;
            round_rung++;
            round_ring = now_ns() - round_t0;
            ws_text(c, "{\"v\":1,\"type\":\"accept\",\"call\":\"%s\"}", call);
        }

    } else if (strcmp(type, "error") == 0) {
        note_error(c, m, len);
        if (!c->welcomed) {
            c->welcomed = -1;
            welcomed++;
        }

    } else if (strcmp(type, "call") == 0 || strcmp(type, "visit") == 0
               || strcmp(type, "ended") == 0 || strcmp(type, "peer") == 0)
    {
        /* the called patient's own messages */

    } else {
        note_error(c, m, len);
    }
}


static char  **ptokens;

static int
room_welcomed(void)
{
    int  i;

    /* keep `concurrency` patients between connect and welcome */
    while (started < npatients && started - welcomed < concurrency) {
        i = started++;
        patients[i] = conn_open(R_PATIENT, i);
        patients[i]->token = ptokens[i];
    }

    return welcomed >= npatients;
}


static void
room_close(conn_t *c)
{
    /* a patient closed before its welcome is settled too */
    if (c->role == R_PATIENT && c->welcomed == 0) {
        c->welcomed = -1;
        welcomed++;
    }
}


static int
quiet_for_500ms(void)
{
    return now_ns() - last_msg_ns > 500000000ULL;
}


static int
doctor_welcomed(void)
{
    return doctor->welcomed || doctor->state == C_CLOSED;
}


static int
round_done(void)
{
    return round_seen >= round_expect || doctor->state == C_CLOSED;
}


static int
doctor_call_up(void)
{
    return doctor_in_call || doctor->state == C_CLOSED;
}


static int
doctor_call_over(void)
{
    return doctor_ended || doctor->state == C_CLOSED;
}


static void
pct_line(const char *what, uint64_t *v, int n)
{
    if (n == 0) {
        printf("%s: none\n", what);
        return;
    }

    qsort(v, n, sizeof(uint64_t), cmp_u64);

    printf("%s: n=%d p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", what, n,
           v[n / 2] / 1e6, v[(int) (n * 0.99)] / 1e6, v[n - 1] / 1e6);
}


static int
cmd_room(const char *tokens_file, const char *doctor_token, int rounds)
{
    int        i, r, waiting, others = 0, got_all;
    uint64_t   t0, t1, *maxes, *p50s, *firsts, *all, *anymax;
    long       q0, o0, w0, fw0, fan_workers = 0, om0, oq0, pm0, wt, sl0;
    int        nall;
    double     cpu0, clk, secs, fc0, fan_secs = 0, fan_client = 0;

    npatients = read_lines(tokens_file, &ptokens);
    patients = calloc(npatients, sizeof(conn_t *));
    round_times = calloc(npatients, sizeof(uint64_t));
    round_any_times = calloc(npatients, sizeof(uint64_t));
    anymax = calloc(rounds, sizeof(uint64_t));
    maxes = calloc(rounds, sizeof(uint64_t));
    p50s = calloc(rounds, sizeof(uint64_t));
    firsts = calloc(rounds, sizeof(uint64_t));
    all = calloc((size_t) npatients * rounds, sizeof(uint64_t));

    if (!patients || !round_times || !round_any_times || !anymax || !maxes
        || !p50s || !firsts || !all)
    {
        die("out of memory");
    }

    on_open = room_open;
    on_message = room_message;
    on_close = room_close;

    /* check-in of every patient */

    cpu0 = self_cpu();
    t0 = now_ns();
    last_msg_ns = t0;

    loop(600000, room_welcomed);

    t1 = now_ns();

    printf("check-in: %d patients connected and welcomed in %.2f s "
           "(%d handshakes at once), %ld errors, %ld closed\n",
           welcomed_ok, (t1 - t0) / 1e9, concurrency, stat_errors,
           stat_closed);

    loop(120000, quiet_for_500ms);

    printf("check-in: %ld queue messages to patients until quiet "
           "(%.2f s after the first connect); client CPU %.2f s\n",
           queue_msgs_total, (now_ns() - t0) / 1e9, self_cpu() - cpu0);

    if (first_error[0]) {
        printf("check-in: first error: %s\n", first_error);
    }

    print_closes("check-in");

    printf("READY %d\n", open_conns);
    fflush(stdout);

    stdin_watch();
    loop(INT_MAX, stdin_done);
    stdin_line = 0;

    if (stdin_eof) {
        return 1;
    }

    /* the doctor's console */

    doctor = conn_open(R_DOCTOR, 0);
    doctor->token = doctor_token;

    t0 = now_ns();
    loop(30000, doctor_welcomed);

    if (!doctor->welcomed) {
        printf("doctor: no welcome (%s)\n", first_error);
        return 1;
    }

    loop(30000, quiet_for_500ms);

    printf("doctor: console of %s connected in %.2f s; its queue message "
           "is %zu bytes\n", doctor_id, (now_ns() - t0) / 1e9,
           doctor_queue_bytes);

    o0 = others_ticks();
    w0 = proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1]);
    pm0 = patient_msgs;
    sl0 = self_sleeps();
    cpu0 = self_cpu();
    t1 = now_ns();

    for (r = 0; r < rounds; r++) {
        waiting = 0;
        others = 0;

        for (i = 0; i < npatients; i++) {
            patients[i]->round_seen = 0;
            patients[i]->round_any = 0;

            if (patients[i]->state != C_OPEN || patients[i]->welcomed != 1) {
                continue;
            }

            if (strcmp(patients[i]->doctor, doctor_id) != 0) {
                others++;

            } else if (!patients[i]->rung && patients[i]->position > 0) {
                waiting++;
            }
        }

        om0 = others_msgs;
        oq0 = others_queue_msgs;
        others_reached = 0;

        round_seen = 0;
        round_any = 0;
        round_rung = 0;
        round_expect = waiting - 1;
        doctor_in_call = 0;
        doctor_ended = 0;
        q0 = queue_msgs_total;

        fw0 = proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1]);
        fc0 = self_cpu();

        round_on = 1;
        round_watch = 1;
        round_t0 = now_ns();
        ws_text(doctor, "{\"v\":1,\"type\":\"call_next\"}");

        loop(10000, round_done);
        round_on = 0;

        /* who was busy while the updates went out */
        fan_secs += (now_ns() - round_t0) / 1e9;
        fan_client += self_cpu() - fc0;
        fan_workers += proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1])
                       - fw0;

        got_all = round_seen >= round_expect;

        for (i = 0; i < round_seen; i++) {
            all[(size_t) npatients * r + i] = round_times[i];
        }

        qsort(round_times, round_seen, sizeof(uint64_t), cmp_u64);
        qsort(round_any_times, round_any, sizeof(uint64_t), cmp_u64);

        if (round_any) {
            printf("round %d: %d patients heard of the call (queue message "
                   "with doctor_busy): first %.2f ms, p50 %.2f ms, last "
                   "%.2f ms\n", r + 1, round_any, round_any_times[0] / 1e6,
                   round_any_times[round_any / 2] / 1e6,
                   round_any_times[round_any - 1] / 1e6);
            anymax[r] = round_any_times[round_any - 1];
        }

        maxes[r] = round_seen ? round_times[round_seen - 1] : 0;
        p50s[r] = round_seen ? round_times[round_seen / 2] : 0;
        firsts[r] = round_seen ? round_times[0] : 0;

        printf("round %d: the ring reached the first patient after %.2f ms; "
               "%d of %d waiting patients got their new position (after "
               "the accept): first %.2f ms, p50 %.2f ms, last %.2f ms%s\n",
               r + 1, round_ring / 1e6, round_seen, round_expect,
               firsts[r] / 1e6, p50s[r] / 1e6, maxes[r] / 1e6,
               got_all ? "" : " (TIMEOUT after 10 s)");

        loop(10000, doctor_call_up);

        if (!doctor_in_call) {
            printf("round %d: the doctor got no call (%s)\n", r + 1,
                   first_error);
            return 1;
        }

        ws_text(doctor, "{\"v\":1,\"type\":\"hangup\",\"call\":\"%s\"}",
                doctor_call);

        loop(10000, doctor_call_over);
        loop(10000, quiet_for_500ms);
        round_watch = 0;

        printf("round %d: %ld queue messages to patients in the round\n",
               r + 1, queue_msgs_total - q0);

        if (others) {
            printf("round %d: the %d connected patients of other doctors "
                   "got %ld messages (%ld queue) from call_next until "
                   "quiet after the hangup; %d of them got any\n", r + 1,
                   others, others_msgs - om0, others_queue_msgs - oq0,
                   others_reached);
        }

        if (doctor->state == C_CLOSED) {
            printf("doctor: closed by the server (code %d)\n",
                   doctor->close_code);
            return 1;
        }
    }

    clk = sysconf(_SC_CLK_TCK);
    secs = (now_ns() - t1) / 1e9;
    wt = proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1]) - w0;

    /* what the rounds cost the workers per message a patient got */
    printf("DELIVERIES patients=%d deliveries=%ld worker_cpu_s=%.2f "
           "per_cpu_s=%.0f queue_bytes=%zu client_cpu_s=%.2f "
           "client_sleeps=%ld\n", welcomed_ok, patient_msgs - pm0, wt / clk,
           wt ? (patient_msgs - pm0) / (wt / clk) : 0, patient_queue_bytes,
           self_cpu() - cpu0, self_sleeps() - sl0);

    if (worker_pid[0]) {
        printf("rounds: %.1f s; nginx workers' CPU %.0f%%, other processes' "
               "%.0f%% of a core (above a few %% the delays are "
               "overstated)\n", secs,
               100 * (proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1])
                      - w0) / clk / secs,
               100 * (others_ticks() - o0) / clk / secs);
        printf("rounds: from call_next until all had their new position: "
               "nginx workers busy %.0f%% of a core, the client %.0f%%\n",
               100 * fan_workers / clk / fan_secs,
               100 * fan_client / fan_secs);
    }

    nall = 0;
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < npatients; i++) {
            if (all[(size_t) npatients * r + i]) {
                all[nall++] = all[(size_t) npatients * r + i];
            }
        }
    }

    qsort(maxes, rounds, sizeof(uint64_t), cmp_u64);
    qsort(p50s, rounds, sizeof(uint64_t), cmp_u64);
    qsort(anymax, rounds, sizeof(uint64_t), cmp_u64);

    /* over the rounds: the median and the worst of each round's last
     * patient, and the median of each round's median patient */
    printf("FANOUT rounds=%d patients=%d last_median_ms=%.2f "
           "last_worst_ms=%.2f p50_median_ms=%.2f busy_last_median_ms=%.2f "
           "busy_last_worst_ms=%.2f others=%d others_msgs=%ld "
           "others_queue_msgs=%ld\n", rounds, round_expect + 1,
           maxes[rounds / 2] / 1e6, maxes[rounds - 1] / 1e6,
           p50s[rounds / 2] / 1e6, anymax[rounds / 2] / 1e6,
           anymax[rounds - 1] / 1e6, others, others_msgs,
           others_queue_msgs);
    pct_line("fan-out, every patient's delay over all rounds", all, nall);

    if (first_error[0]) {
        printf("first error: %s\n", first_error);
    }

    print_closes("end");

    printf("DONE %d\n", open_conns);
    fflush(stdout);

    loop(INT_MAX, stdin_done);

    return 0;
}


/*
 * nchan
 */

static conn_t   *publisher;
static long      pub_answers;
static long      pub_refused;
static int       nsubs;
static int       subs_started;
static int       subs_open;
static int       subs_settled;
static long      sub_frames;


/* nchan's answers to the publishes: counted, 2xx or not, and dropped */

static void
http_answers(conn_t *c)
{
    char       *end, *cl;
    size_t      hl, body;
    long long   status;

    for ( ;; ) {
        end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end == NULL) {
            return;
        }

        hl = end + 4 - c->in;
        body = 0;

        cl = memmem(c->in, hl, "Content-Length: ", 16);
        if (cl) {
            body = strtoul(cl + 16, NULL, 10);
        }

        if (c->in_len < hl + body) {
            return;
        }

        status = (c->in_len > 12 && memcmp(c->in, "HTTP/1.1 ", 9) == 0)
                 ? strtoll(c->in + 9, NULL, 10) : 0;

        pub_answers++;

        if (status < 200 || status > 299) {
            pub_refused++;
            note_error(c, c->in, hl);
        }

        memmove(c->in, c->in + hl + body, c->in_len - hl - body);
        c->in_len -= hl + body;
    }
}


static void
nchan_open(conn_t *c)
{
    c->welcomed = 1;
    subs_open++;
    subs_settled++;

    /* a word after the handshake, as a patient's hello */
    ws_send(c, 0x9, "hello", 5);
}


static void
nchan_close(conn_t *c)
{
    if (c->role != R_PATIENT) {
        return;
    }

    if (c->welcomed == 1) {
        subs_open--;

    } else if (c->welcomed == 0) {
        /* refused or closed before its handshake: settled too */
        c->welcomed = -1;
        subs_settled++;
    }
}


static void
nchan_message(conn_t *c, char *m, size_t len)
{
    if (c->role == R_PATIENT) {
        c->received++;
        sub_frames++;
    }
}


static int
subs_connected(void)
{
    while (subs_started < nsubs && subs_started - subs_settled < concurrency)
    {
        (void) conn_open(R_PATIENT, subs_started++);
    }

    return subs_settled >= nsubs;
}


static long  nchan_want;

static int
subs_have_all(void)
{
    return sub_frames >= nchan_want || publisher->state == C_CLOSED;
}


static int
cmd_nchan(const char *pub_path, int publishes, int size)
{
    char      *msg, req[1024];
    int        i, n, hl, late;
    long       w0, w1, sl0;
    double     c0, clk, wsecs;
    uint64_t   t0, t1;

    if (size < 16) {
        size = 16;
    }

    msg = malloc(size + 1);
    if (msg == NULL) {
        die("out of memory");
    }

    on_open = nchan_open;
    on_message = nchan_message;
    on_close = nchan_close;

    t0 = now_ns();
    last_msg_ns = t0;
    loop(600000, subs_connected);

    printf("nchan: %d of %d subscribers connected in %.2f s, %ld errors, "
           "%ld closed\n", subs_open, nsubs, (now_ns() - t0) / 1e9,
           stat_errors, stat_closed);

    loop(30000, quiet_for_500ms);

    printf("READY %d\n", subs_open);
    fflush(stdout);

    /* the script reads the worker's memory meanwhile */
    stdin_watch();
    loop(INT_MAX, stdin_done);
    stdin_line = 0;

    if (stdin_eof) {
        return 1;
    }

    publisher = conn_open(R_PUBLISHER, 0);
    loop(500, NULL);

    if (publisher->state != C_OPEN) {
        die("cannot connect the publisher");
    }

    w0 = proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1]);
    c0 = self_cpu();
    sl0 = self_sleeps();
    t1 = now_ns();
    late = 0;

    for (i = 0; i < publishes; i++) {
        /* a message the size of the room's queue message */
        n = snprintf(msg, size + 1, "{\"v\":1,\"type\":\"queue\","
                     "\"position\":%d,\"waiting\":%d,\"pad\":\"", i + 1,
                     nsubs);
        if (n > size - 2) {
            n = size - 2;
        }
        memset(msg + n, 'x', size - 2 - n);
        memcpy(msg + size - 2, "\"}", 2);

        hl = snprintf(req, sizeof(req),
                      "POST %s HTTP/1.1\r\n"
                      "Host: %s:%d\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %d\r\n"
                      "\r\n", pub_path, host, port, size);

        conn_send_raw(publisher, req, hl);
        conn_send_raw(publisher, msg, size);

        nchan_want = sub_frames + subs_open;
        loop(10000, subs_have_all);

        late += sub_frames < nchan_want;

        /*
         * paced as the room's rounds: two messages to each, then the
         * client waits for 500 ms of quiet.  The pace matters on
         * loopback: data after an idle longer than the RTO makes the
         * receiver ACK at once (quick ACK), in the softirq of the
         * sender's CPU, so the server's
         */
        if (i % 2) {
            loop(10000, quiet_for_500ms);
        }
    }

    loop(10000, quiet_for_500ms);

    w1 = proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1]);
    clk = sysconf(_SC_CLK_TCK);
    wsecs = (w1 - w0) / clk;

    printf("nchan: %d publishes of %d bytes to %d subscribers: %ld "
           "deliveries in %.2f s, %ld answers (%ld not 2xx), %d not "
           "delivered to all within 10 s\n", publishes, size, subs_open,
           sub_frames, (now_ns() - t1) / 1e9, pub_answers, pub_refused,
           late);

    if (first_error[0]) {
        printf("nchan: first error: %s\n", first_error);
    }

    printf("NCHAN subscribers=%d deliveries=%ld worker_cpu_s=%.2f "
           "per_cpu_s=%.0f client_cpu_s=%.2f client_sleeps=%ld\n",
           subs_open, sub_frames, wsecs, wsecs > 0 ? sub_frames / wsecs : 0,
           self_cpu() - c0, self_sleeps() - sl0);

    printf("DONE %d\n", open_conns);
    fflush(stdout);

    loop(INT_MAX, stdin_done);

    return 0;
}


/*
 * signal
 */

typedef struct {
    conn_t   *doctor;
    conn_t   *patient;
    int       cross;
    int       state;        /* 0 setting up, 1 up */
} call_t;

static call_t   *calls;
static int       ncalls;
static int       calls_up;
static int       phase_on;           /* 0 idle, 1 paced, 2 load */
static int       phase_cross;
static int       window = 8;
static int       payload = 200;
static char     *pad;
static lat_t    *lat;                /* the current phase's histogram */
static uint64_t  phase_msgs;


static void
signal_send(conn_t *c)
{
    ws_text(c, "{\"v\":1,\"type\":\"signal\",\"call\":\"%s\",\"data\":"
            "{\"bt\":%llu,\"bpad\":\"%s\"}}", c->call,
            (unsigned long long) now_ns(), pad);
    c->sent++;
}


static void
lat_add(lat_t *l, uint64_t ns)
{
    uint64_t  us = ns / 1000;

    l->hist[us < HIST_US ? us : HIST_US]++;
    l->count++;
    l->sum_ns += ns;
    if (ns > l->max_ns) {
        l->max_ns = ns;
    }
}


static double
lat_pct(lat_t *l, double q)
{
    uint64_t  want, n = 0;
    int       i;

    if (l->count == 0) {
        return 0;
    }

    want = (uint64_t) (q * l->count);
    if (want >= l->count) {
        want = l->count - 1;
    }

    for (i = 0; i <= HIST_US; i++) {
        n += l->hist[i];
        if (n > want) {
            return (i + 0.5) / 1000.0;        /* ms */
        }
    }

    return HIST_US / 1000.0;
}


static void
signal_open(conn_t *c)
{
    /* hello is sent when the call is set up, once workers are known */
}


static void
signal_message(conn_t *c, char *m, size_t len)
{
    char       type[32], call[64];
    long long  bt;
    call_t    *k;

    if (json_str(m, len, "type", type, sizeof(type)) != 0) {
        note_error(c, m, len);
        return;
    }

    if (strcmp(type, "signal") == 0) {
        c->received++;

        if (phase_on && json_num(m, len, "bt", &bt) == 0) {
            lat_add(lat, now_ns() - (uint64_t) bt);
            phase_msgs++;

            /* the load phase keeps `window` in flight from each side */
            if (phase_on == 2 && c->peer) {
                signal_send(c);
            }
        }

        return;
    }

    k = &calls[c->index];

    if (strcmp(type, "welcome") == 0) {
        c->welcomed = 1;

        if (c->role == R_PATIENT) {
            /* the patient is in the queue: the doctor says hello */
            ws_text(k->doctor, "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\"}",
                    k->doctor->token);

        } else {
            ws_text(c, "{\"v\":1,\"type\":\"call_next\"}");
        }

    } else if (strcmp(type, "ring") == 0) {
        if (json_str(m, len, "call", call, sizeof(call)) == 0) {
            ws_text(c, "{\"v\":1,\"type\":\"accept\",\"call\":\"%s\"}", call);
        }

    } else if (strcmp(type, "call") == 0) {
        if (json_str(m, len, "call", c->call, sizeof(c->call)) == 0
            && !c->in_call)
        {
            c->in_call = 1;

            if (k->doctor->in_call && k->patient->in_call) {
                k->state = 1;
                k->doctor->peer = k->patient;
                k->patient->peer = k->doctor;
                calls_up++;
            }
        }

    } else if (strcmp(type, "error") == 0) {
        note_error(c, m, len);

    } else if (strcmp(type, "queue") == 0 || strcmp(type, "call_state") == 0
               || strcmp(type, "peer") == 0)
    {
        /* nothing to do */

    } else {
        note_error(c, m, len);
    }
}


/* which worker holds each open connection: the server side's socket inode
 * from /proc/net/tcp, found among the workers' fds */

typedef struct {
    unsigned long  inode;
    int            worker;
} inode_t;


static int
cmp_inode(const void *a, const void *b)
{
    unsigned long  x = ((const inode_t *) a)->inode;
    unsigned long  y = ((const inode_t *) b)->inode;

    return x < y ? -1 : x > y;
}


static void
map_workers(void)
{
    char                dir[64], link[PATH_MAX], name[PATH_MAX], line[512];
    DIR                *d;
    FILE               *f;
    struct dirent      *de;
    inode_t            *in = NULL, key, *hit;
    int                 nin = 0, w, i, *byport;
    unsigned int        la, lp, ra, rp;
    unsigned long       inode;
    ssize_t             n;
    struct sockaddr_in  sa;
    socklen_t           sl;

    for (w = 0; w < 2; w++) {
        snprintf(dir, sizeof(dir), "/proc/%d/fd", worker_pid[w]);

        d = opendir(dir);
        if (d == NULL) {
            die("%s: %s", dir, strerror(errno));
        }

        while ((de = readdir(d))) {
            snprintf(name, sizeof(name), "%s/%s", dir, de->d_name);
            n = readlink(name, link, sizeof(link) - 1);
            if (n <= 0) {
                continue;
            }
            link[n] = '\0';

            if (sscanf(link, "socket:[%lu]", &inode) == 1) {
                in = xrealloc(in, (nin + 1) * sizeof(inode_t));
                in[nin].inode = inode;
                in[nin].worker = w;
                nin++;
            }
        }

        closedir(d);
    }

    qsort(in, nin, sizeof(inode_t), cmp_inode);

    /* client port -> worker */
    byport = malloc(65536 * sizeof(int));
    for (i = 0; i < 65536; i++) {
        byport[i] = -1;
    }

    f = fopen("/proc/net/tcp", "r");
    if (f == NULL) {
        die("/proc/net/tcp: %s", strerror(errno));
    }

    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, " %*d: %x:%x %x:%x %*x %*x:%*x %*x:%*x %*x %*d %*d "
                   "%lu", &la, &lp, &ra, &rp, &inode) != 5)
        {
            continue;
        }

        if ((int) lp != port || rp > 65535) {
            continue;
        }

        key.inode = inode;
        hit = bsearch(&key, in, nin, sizeof(inode_t), cmp_inode);

        if (hit) {
            byport[rp] = hit->worker;
        }
    }

    fclose(f);

    for (i = 0; i < nconns; i++) {
        if (conns[i]->state != C_OPEN) {
            continue;
        }

        sl = sizeof(sa);
        if (getsockname(conns[i]->fd, (struct sockaddr *) &sa, &sl) == 0) {
            conns[i]->worker = byport[ntohs(sa.sin_port)];
        }
    }

    free(byport);
    free(in);
}


static int  want_open;

static int
all_open(void)
{
    int  i, n = 0;

    for (i = 0; i < nconns; i++) {
        n += conns[i]->state == C_OPEN;
    }

    return n >= want_open;
}


static int
all_calls_up(void)
{
    return calls_up >= ncalls;
}


static int
phase_drained(void)
{
    int  i;

    for (i = 0; i < ncalls; i++) {
        if (calls[i].doctor->received + calls[i].patient->received
            < calls[i].doctor->sent + calls[i].patient->sent)
        {
            return 0;
        }
    }

    return 1;
}


typedef struct {
    lat_t     paced;
    lat_t     load;
    double    paced_secs;
    double    load_secs;
    uint64_t  paced_msgs;
    uint64_t  load_msgs;
    long      load_ticks;          /* workers' CPU in the load phases */
    long      paced_ticks;
    double    client_cpu;          /* in the load phases */
    long      others;              /* other processes, all phases */
    double    secs;
} result_t;


static void
run_phase(int cross, int kind, double secs, double rate, result_t *res)
{
    uint64_t  t0, t, end, due, sent;
    long      w0, o0;
    double    c0;
    int       i, j, sides;
    conn_t   *c;
    call_t   *k;

    phase_cross = cross;
    lat = kind == 1 ? &res->paced : &res->load;
    phase_msgs = 0;

    w0 = proc_ticks(worker_pid[0]) + proc_ticks(worker_pid[1]);
    o0 = others_ticks();
    c0 = self_cpu();
    t0 = now_ns();
    end = t0 + (uint64_t) (secs * 1e9);
    phase_on = kind;

    if (kind == 2) {
        for (i = 0; i < ncalls; i++) {
            k = &calls[i];
            if (k->cross != cross) {
                continue;
            }
            for (j = 0; j < window; j++) {
                signal_send(k->doctor);
                signal_send(k->patient);
            }
        }

        loop((int) (secs * 1000), NULL);

    } else {
        /* paced: rate messages a second over the calls' sides in turn */
        sides = 0;
        for (i = 0; i < ncalls; i++) {
            sides += 2 * (calls[i].cross == cross);
        }

        sent = 0;
        i = 0;

        while ((t = now_ns()) < end) {
            due = (uint64_t) ((t - t0) / 1e9 * rate);

            while (sent < due) {
                do {
                    i = (i + 1) % (2 * ncalls);
                } while (calls[i / 2].cross != cross);

                c = (i & 1) ? calls[i / 2].patient : calls[i / 2].doctor;
                signal_send(c);
                sent++;
            }

            loop(1, NULL);
        }

        (void) sides;
    }

    t = now_ns();

    res->others += others_ticks() - o0;
    res->secs += (t - t0) / 1e9;

    if (kind == 2) {
        res->load_secs += (t - t0) / 1e9;
        res->load_ticks += proc_ticks(worker_pid[0])
                           + proc_ticks(worker_pid[1]) - w0;
        res->client_cpu += self_cpu() - c0;
        res->load_msgs += phase_msgs;

    } else {
        res->paced_secs += (t - t0) / 1e9;
        res->paced_ticks += proc_ticks(worker_pid[0])
                            + proc_ticks(worker_pid[1]) - w0;
        res->paced_msgs += phase_msgs;
    }

    /* stop sending; the latencies of what is in flight still count, the
     * rate is of what arrived within the phase */
    phase_on = kind == 2 ? 3 : kind;
    loop(2000, phase_drained);
    phase_on = 0;
}


static void
print_result(const char *name, result_t *r, double clk)
{
    printf("SIGNAL %s paced_rate=%.0f paced_p50_ms=%.3f paced_p99_ms=%.3f "
           "paced_p999_ms=%.3f paced_max_ms=%.3f paced_n=%llu load_rate=%.0f "
           "load_p50_ms=%.3f load_p99_ms=%.3f load_max_ms=%.3f load_n=%llu "
           "worker_us_per_msg=%.2f workers_cpu_pct=%.0f client_cpu_pct=%.0f "
           "others_cpu_pct=%.0f\n",
           name, r->paced_msgs / r->paced_secs, lat_pct(&r->paced, 0.5),
           lat_pct(&r->paced, 0.99), lat_pct(&r->paced, 0.999),
           r->paced.max_ns / 1e6, (unsigned long long) r->paced.count,
           r->load_msgs / r->load_secs,
           lat_pct(&r->load, 0.5), lat_pct(&r->load, 0.99),
           r->load.max_ns / 1e6, (unsigned long long) r->load.count,
           r->load_msgs ? 1e6 * r->load_ticks / clk / r->load_msgs : 0,
           100 * r->load_ticks / clk / r->load_secs,
           100 * r->client_cpu / r->load_secs,
           r->secs > 0 ? 100 * r->others / clk / r->secs : 0);
}


static int
cmd_signal(const char *pairs_file, double secs, double rate, int rounds)
{
    char      **lines, *sp;
    int         n, i, w, r, need[2], have[2], extra;
    conn_t     *c, **pool[2];
    int         npool[2], used[2];
    result_t   *res;
    double      clk;

    n = read_lines(pairs_file, &lines);
    ncalls = n;

    if (ncalls < 2 || ncalls % 2) {
        die("%s: an even number of pairs, at least 2", pairs_file);
    }

    calls = calloc(ncalls, sizeof(call_t));
    res = calloc(2, sizeof(result_t));
    pad = malloc(payload + 1);

    if (calls == NULL || res == NULL || pad == NULL) {
        die("out of memory");
    }

    memset(pad, 'x', payload);
    pad[payload] = '\0';

    on_open = signal_open;
    on_message = signal_message;

    /*
     * call i has its doctor on worker i % 2; the first half (the cross
     * calls) has the patient on the other worker, the second half on the
     * same one.  Open connections until both workers hold enough.
     */

    need[0] = need[1] = 0;

    for (i = 0; i < ncalls; i++) {
        need[i % 2]++;                                  /* the doctor */
        need[i < ncalls / 2 ? 1 - i % 2 : i % 2]++;     /* the patient */
    }

    extra = 0;

    for ( ;; ) {
        want_open = 2 * ncalls + extra;

        while (nconns < want_open) {
            conn_open(R_NONE, -1);
        }

        loop(10000, all_open);
        map_workers();

        have[0] = have[1] = 0;
        for (i = 0; i < nconns; i++) {
            if (conns[i]->state == C_OPEN && conns[i]->worker >= 0) {
                have[conns[i]->worker]++;
            }
        }

        if (have[0] >= need[0] && have[1] >= need[1]) {
            break;
        }

        if (nconns > 20 * ncalls + 100) {
            die("connections do not spread over both workers (%d, %d)",
                have[0], have[1]);
        }

        extra += ncalls / 2 + 2;
    }

    printf("signal: %d connections opened, %d on worker %d and %d on "
           "worker %d\n", nconns, have[0], worker_pid[0], have[1],
           worker_pid[1]);

    for (w = 0; w < 2; w++) {
        pool[w] = calloc(have[w], sizeof(conn_t *));
        npool[w] = 0;
        used[w] = 0;
    }

    for (i = 0; i < nconns; i++) {
        c = conns[i];
        if (c->state == C_OPEN && c->worker >= 0) {
            pool[c->worker][npool[c->worker]++] = c;
        }
    }

    for (i = 0; i < ncalls; i++) {
        call_t  *k = &calls[i];
        int      home = i % 2;

        k->cross = i < ncalls / 2;     /* the same rule as need[] above */

        sp = strchr(lines[i], ' ');
        if (sp == NULL) {
            die("%s: line %d is not \"DOCTOR PATIENT\"", pairs_file, i + 1);
        }
        *sp++ = '\0';

        k->doctor = pool[home][used[home]++];
        w = k->cross ? 1 - home : home;
        k->patient = pool[w][used[w]++];

        k->doctor->role = R_DOCTOR;
        k->doctor->index = i;
        k->doctor->token = lines[i];
        k->patient->role = R_PATIENT;
        k->patient->index = i;
        k->patient->token = sp;
    }

    /* the connections not needed go */
    for (i = 0; i < nconns; i++) {
        if (conns[i]->role == R_NONE) {
            ws_send(conns[i], 0x8, "\x03\xe8", 2);
            conn_close(conns[i]);
        }
    }

    /* patients check in; each welcome brings its doctor's hello, then
     * call_next, ring, accept */
    for (i = 0; i < ncalls; i++) {
        ws_text(calls[i].patient,
                "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\"}",
                calls[i].patient->token);
    }

    loop(60000, all_calls_up);

    if (calls_up < ncalls) {
        printf("signal: only %d of %d calls set up; %ld errors, first: %s\n",
               calls_up, ncalls, stat_errors, first_error);
        print_closes("signal");
        return 1;
    }

    printf("signal: %d calls set up: %d across workers, %d within one "
           "worker\n", ncalls, ncalls / 2, ncalls / 2);
    fflush(stdout);

    /* a short warm-up of each kind */
    run_phase(1, 2, 0.5, 0, &res[1]);
    run_phase(0, 2, 0.5, 0, &res[0]);
    memset(res, 0, 2 * sizeof(result_t));

    for (r = 0; r < rounds; r++) {
        run_phase(1, 1, secs, rate, &res[1]);
        run_phase(0, 1, secs, rate, &res[0]);
        run_phase(1, 2, secs, 0, &res[1]);
        run_phase(0, 2, secs, 0, &res[0]);
    }

    clk = sysconf(_SC_CLK_TCK);

    print_result("cross", &res[1], clk);
    print_result("same", &res[0], clk);

    if (stat_errors) {
        printf("signal: %ld errors, first: %s\n", stat_errors, first_error);
    }

    print_closes("signal");

    for (i = 0; i < ncalls; i++) {
        ws_text(calls[i].doctor,
                "{\"v\":1,\"type\":\"hangup\",\"call\":\"%s\"}",
                calls[i].doctor->call);
    }

    loop(300, NULL);

    return stat_errors ? 1 : 0;
}


static void
usage(void)
{
    fprintf(stderr,
        "usage: roomload room -p PORT -t TOKENS -D DOCTOR_TOKEN [-R rounds]"
        " [-c concurrency] [-W PID,PID] [-q PORT2 -a N]\n"
        "       roomload signal -p PORT -f PAIRS -W PID,PID [-d secs]"
        " [-w window] [-r rate] [-s size] [-k rounds]\n"
        "       roomload nchan -p PORT -u SUB_PATH -x PUB_PATH -n SUBSCRIBERS"
        " [-P publishes] [-s size] [-W PID,PID]\n"
        "       common: [-H host] [-u path]\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    const char  *cmd, *tokens = NULL, *doctor_token = NULL, *pairs = NULL;
    const char  *workers = NULL, *pub_path = NULL;
    int          opt, rounds = 5, krounds = 2, publishes = 10;
    double       secs = 3, rate = 2000;

    if (argc < 2) {
        usage();
    }

    cmd = argv[1];
    optind = 2;

    while ((opt = getopt(argc, argv, "H:p:q:a:u:t:D:R:c:f:W:d:w:r:s:k:x:n:P:"))
           != -1)
    {
        switch (opt) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'q': port2 = atoi(optarg); break;
        case 'a': away = atoi(optarg); break;
        case 'u': path = optarg; break;
        case 't': tokens = optarg; break;
        case 'D': doctor_token = optarg; break;
        case 'R': rounds = atoi(optarg); break;
        case 'c': concurrency = atoi(optarg); break;
        case 'f': pairs = optarg; break;
        case 'W': workers = optarg; break;
        case 'd': secs = atof(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 's': payload = atoi(optarg); break;
        case 'k': krounds = atoi(optarg); break;
        case 'x': pub_path = optarg; break;
        case 'n': nsubs = atoi(optarg); break;
        case 'P': publishes = atoi(optarg); break;
        default: usage();
        }
    }

    if (port <= 0 || port > 65535) {
        usage();
    }

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);

    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        die("host must be an IPv4 address: %s", host);
    }

    if (away > 0 && (port2 <= 0 || port2 > 65535)) {
        usage();
    }

    addr2 = addr;
    addr2.sin_port = htons(port2);

    rnd ^= (uint32_t) now_ns() ^ (uint32_t) getpid();

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("epoll_create1: %s", strerror(errno));
    }

    setvbuf(stdout, NULL, _IOLBF, 0);

    if (strcmp(cmd, "room") == 0) {
        if (tokens == NULL || doctor_token == NULL || rounds < 1
            || (workers
                && sscanf(workers, "%d,%d", &worker_pid[0], &worker_pid[1])
                   != 2))
        {
            usage();
        }
        return cmd_room(tokens, doctor_token, rounds);
    }

    if (strcmp(cmd, "signal") == 0) {
        if (pairs == NULL || workers == NULL
            || sscanf(workers, "%d,%d", &worker_pid[0], &worker_pid[1]) != 2
            || window < 1 || payload < 0 || krounds < 1)
        {
            usage();
        }
        return cmd_signal(pairs, secs, rate, krounds);
    }

    if (strcmp(cmd, "nchan") == 0) {
        if (pub_path == NULL || nsubs < 1 || publishes < 1
            || (workers
                && sscanf(workers, "%d,%d", &worker_pid[0], &worker_pid[1])
                   != 2))
        {
            usage();
        }
        return cmd_nchan(pub_path, publishes, payload);
    }

    usage();
    return 2;
}
