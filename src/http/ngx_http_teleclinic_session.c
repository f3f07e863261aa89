
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_teleclinic_token.h"
#include "ngx_teleclinic_bus.h"
#include "ngx_teleclinic_room.h"
#include "ngx_http_teleclinic_session.h"


/*
 * A WebSocket connection as the waiting room sees it: nobody until its
 * "hello", then a patient (one appointment) or a doctor's console.  The
 * worker keeps its connections in a table by serial number, which is how
 * mail from other workers and the room's updates find them.
 */


typedef struct ngx_teleclinic_session_s  ngx_teleclinic_session_t;

struct ngx_teleclinic_session_s {
    ngx_uint_t                         serial;
    ngx_teleclinic_session_t          *next;     /* in its bucket */
    ngx_teleclinic_ws_t               *ws;
    ngx_uint_t                         role;
    uint64_t                           appt;
    size_t                             doctor_len;
    u_char                             doctor[NGX_TELECLINIC_ID_MAX];
    ngx_teleclinic_journal_waiter_t    waiter;
    ngx_http_teleclinic_relay_t       *relay;    /* the room is elsewhere */
    unsigned                           syncing:1;
};


/* a sweep of one room at a time the room asked for */
typedef struct {
    ngx_event_t                        event;
    size_t                             doctor_len;
    u_char                             doctor[NGX_TELECLINIC_ID_MAX];
} ngx_teleclinic_sweep_t;


/* a hint to the processor: the line at p is needed soon */
#if (__GNUC__ || __clang__)
#define ngx_teleclinic_prefetch(p)    __builtin_prefetch(p)
#else
#define ngx_teleclinic_prefetch(p)
#endif


/* the nodes a welcome names, at most */
#define NGX_TELECLINIC_SESSION_NODES  16

/*
 * ms: how often the rooms of this worker's clients are checked against
 * the nodes alive, and how long after Redis came back they are left as
 * they are, for the heartbeats to say again who is alive
 */
#define NGX_TELECLINIC_SESSION_HOMES  1000
#define NGX_TELECLINIC_SESSION_SETTLE 2500


/* rooms whose queues changed, gathered over one batch of mail */
#define NGX_TELECLINIC_CHANGED_MAX    64

typedef struct {
    size_t                             len;
    u_char                             doctor[NGX_TELECLINIC_ID_MAX];
} ngx_teleclinic_changed_t;


static void ngx_teleclinic_session_hello(ngx_teleclinic_ws_t *ws,
    ngx_teleclinic_session_t *s, ngx_teleclinic_ws_msg_t *msg);
static void ngx_teleclinic_session_nodes(json_t *reply);
static ngx_int_t ngx_teleclinic_session_elsewhere(
    ngx_teleclinic_session_t *s, ngx_str_t *doctor,
    ngx_teleclinic_ws_msg_t *msg);
static ngx_int_t ngx_teleclinic_session_relay(ngx_teleclinic_session_t *s,
    ngx_str_t *doctor, ngx_teleclinic_ws_msg_t *msg);
static ngx_int_t ngx_teleclinic_session_actor(ngx_teleclinic_session_t *s,
    ngx_teleclinic_actor_t *a, u_char *doctor, size_t len);
static void ngx_teleclinic_session_slot(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_doctor_t *d);
static void ngx_teleclinic_session_done(ngx_teleclinic_session_t *s,
    ngx_teleclinic_actor_t *a);
static void ngx_teleclinic_session_synced(void *data, ngx_int_t rc);
static void ngx_teleclinic_session_refuse(ngx_teleclinic_ws_t *ws,
    json_t *id, const char *code);
static void ngx_teleclinic_session_role(ngx_teleclinic_session_t *s,
    ngx_uint_t role);
static void ngx_teleclinic_session_mail(ngx_teleclinic_mail_t *mail);
static void ngx_teleclinic_session_room_changed(u_char *doctor, size_t len);
static void ngx_teleclinic_session_send(ngx_uint_t serial, u_char *text,
    size_t len);
static void ngx_teleclinic_session_ahead(ngx_uint_t serial,
    ngx_uint_t distance);
static ngx_teleclinic_session_t *ngx_teleclinic_session_find(
    ngx_uint_t serial);
static void ngx_teleclinic_session_timer(ngx_teleclinic_actor_t *a);
static void ngx_teleclinic_session_sweep(ngx_event_t *ev);
static void ngx_teleclinic_session_day_end(ngx_event_t *ev);
static void ngx_teleclinic_session_homes(ngx_event_t *ev);


/* the protocol's names of the room's refusals, by their error */
static const char  *ngx_teleclinic_session_codes[] = {
    NULL,
    "busy",
    "not_connected",
    "not_in_call",
    "not_in_queue",
    "queue_empty",
    "too_early",
    "unauthorized",
    "visit_over",
    "zone_full",
    "unknown_request"
};


static ngx_http_teleclinic_main_conf_t  *ngx_teleclinic_session_conf;
static ngx_teleclinic_session_t        **ngx_teleclinic_sessions;
static ngx_uint_t                        ngx_teleclinic_sessions_mask;
static ngx_uint_t                        ngx_teleclinic_session_serial;

static ngx_event_t                      ngx_teleclinic_midnight;

/* with several nodes: where the rooms of this worker's clients belong */
static ngx_event_t                      ngx_teleclinic_homes;
static ngx_uint_t                       ngx_teleclinic_homes_version;
static ngx_msec_t                       ngx_teleclinic_homes_back;
static ngx_uint_t                       ngx_teleclinic_homes_up;

static ngx_teleclinic_changed_t   ngx_teleclinic_changed[
                                      NGX_TELECLINIC_CHANGED_MAX];
static ngx_uint_t                 ngx_teleclinic_nchanged;


/* the messages of the error codes the room answers with */

typedef struct {
    const char                        *code;
    const char                        *message;
} ngx_teleclinic_refusal_t;


static ngx_teleclinic_refusal_t  ngx_teleclinic_refusals[] = {
    { "not_joined", "send \"hello\" with your token first" },
    { "already_joined", "this connection has said hello already" },
    { "unauthorized", "the token is not valid" },
    { "unavailable", "this endpoint has no waiting room" },
    { "too_early", "check-in is not open yet" },
    { "visit_over", "this visit is over or was cancelled" },
    { "not_in_queue", "that patient is not in your queue" },
    { "not_connected", "that patient's connection is gone for now" },
    { "queue_empty", "nobody in the queue is connected" },
    { "busy", "a call is ringing or in progress" },
    { "not_in_call", "you are not in that call" },
    { "unknown_type", "no such message type for you" },
    { "zone_full", "the service is out of room, try again later" },
    { NULL, "refused" }
};


ngx_int_t
ngx_teleclinic_session_init_process(ngx_cycle_t *cycle)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_teleclinic_module);

    if (tmcf == NULL || tmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    ngx_teleclinic_session_conf = tmcf;

    if (ngx_teleclinic_bus_init_process(cycle, ngx_http_teleclinic_zone(tmcf),
                                        ngx_teleclinic_session_mail,
                                        ngx_teleclinic_room_worker_gone_locked)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* past days first, then every midnight */

    ngx_teleclinic_midnight.handler = ngx_teleclinic_session_day_end;
    ngx_teleclinic_midnight.log = cycle->log;
    ngx_teleclinic_midnight.cancelable = 1;

    ngx_add_timer(&ngx_teleclinic_midnight, 1000);

    if (ngx_teleclinic_mirror_on()) {
        ngx_teleclinic_homes.handler = ngx_teleclinic_session_homes;
        ngx_teleclinic_homes.log = cycle->log;
        ngx_teleclinic_homes.cancelable = 1;

        ngx_teleclinic_homes_version = ngx_teleclinic_mirror_nodes_version();
        ngx_add_timer(&ngx_teleclinic_homes, NGX_TELECLINIC_SESSION_HOMES);
    }

    return NGX_OK;
}


void
ngx_teleclinic_session_exit_process(ngx_cycle_t *cycle)
{
    ngx_teleclinic_bus_exit_process(cycle);
    ngx_teleclinic_session_conf = NULL;
}


ngx_int_t
ngx_teleclinic_session_open(ngx_teleclinic_ws_t *ws)
{
    ngx_uint_t                  n;
    ngx_teleclinic_session_t  **bucket, *s;

    s = ngx_pcalloc(ws->pool, sizeof(ngx_teleclinic_session_t));
    if (s == NULL) {
        return NGX_ERROR;
    }

    if (ngx_teleclinic_sessions == NULL) {

        /*
         * The first connection of this worker: a head for each connection
         * it may have.  Serials are given in turn, so consecutive ones
         * take consecutive heads and a chain rarely holds more than one:
         * a fan-out finds each of thousands of patients with one look,
         * where a tree walked a dozen nodes in as many request pools.
         * It is the process's, not a cycle's: no reload frees it.
         */

        for (n = 64; n < ngx_cycle->connection_n; n <<= 1) { /* void */ }

        ngx_teleclinic_sessions = ngx_calloc(n * sizeof(void *),
                                             ngx_cycle->log);
        if (ngx_teleclinic_sessions == NULL) {
            return NGX_ERROR;
        }

        ngx_teleclinic_sessions_mask = n - 1;
    }

    s->ws = ws;
    s->serial = ++ngx_teleclinic_session_serial;

    bucket = &ngx_teleclinic_sessions[s->serial
                                      & ngx_teleclinic_sessions_mask];
    s->next = *bucket;
    *bucket = s;

    ws->session = s;

    ngx_teleclinic_session_role(s, NGX_TELECLINIC_ROLE_NONE);

    return NGX_OK;
}


void
ngx_teleclinic_session_close(ngx_teleclinic_ws_t *ws)
{
    ngx_teleclinic_actor_t      a;
    ngx_teleclinic_session_t  **sp, *s;

    s = ws->session;

    if (s == NULL) {
        return;
    }

    ws->session = NULL;

    if (s->relay) {
        ngx_http_teleclinic_relay_close(s->relay);
        s->relay = NULL;
    }

    if (s->syncing) {
        ngx_teleclinic_journal_cancel(&s->waiter);
        s->syncing = 0;
    }

    if (s->role != NGX_TELECLINIC_ROLE_NONE
        && ngx_teleclinic_session_actor(s, &a, s->doctor, s->doctor_len)
           == NGX_OK)
    {
        ngx_teleclinic_room_dropped(&a,
                                    s->role == NGX_TELECLINIC_ROLE_DOCTOR);
        ngx_teleclinic_session_timer(&a);
    }

    /* last: mail for it finds nothing from now on */

    for (sp = &ngx_teleclinic_sessions[s->serial
                                       & ngx_teleclinic_sessions_mask];
         *sp && *sp != s;
         sp = &(*sp)->next)
    { /* void */ }

    if (*sp) {
        *sp = s->next;
    }

    ngx_teleclinic_session_role(s, (ngx_uint_t) -1);
}


void
ngx_teleclinic_session_message(ngx_teleclinic_ws_t *ws,
    ngx_teleclinic_ws_msg_t *msg)
{
    char                      *data;
    json_t                    *signal;
    ngx_uint_t                 doctor;
    ngx_int_t                  rc;
    const char                *code;
    ngx_teleclinic_actor_t     a;
    ngx_teleclinic_session_t  *s;

    s = ws->session;

    if (s->relay) {
        /* the room's node answers it all, a second hello too */
        ngx_http_teleclinic_relay_message(s->relay, msg->root);
        return;
    }

    if (msg->type == NGX_TELECLINIC_WS_HELLO) {
        if (s->role != NGX_TELECLINIC_ROLE_NONE) {
            ngx_teleclinic_session_refuse(ws, msg->id, "already_joined");

        } else if (msg->code) {
            ngx_teleclinic_ws_send_error(ws, msg->id, msg->code,
                                         msg->message);
        } else {
            ngx_teleclinic_session_hello(ws, s, msg);
        }

        return;
    }

    if (s->role == NGX_TELECLINIC_ROLE_NONE) {
        ngx_teleclinic_session_refuse(ws, msg->id, "not_joined");
        return;
    }

    doctor = (s->role == NGX_TELECLINIC_ROLE_DOCTOR);

    /* each role has its own messages; the call's are both's */

    switch (msg->type) {

    case NGX_TELECLINIC_WS_ACCEPT:
    case NGX_TELECLINIC_WS_DECLINE:
    case NGX_TELECLINIC_WS_LEAVE:
        if (doctor) {
            ngx_teleclinic_session_refuse(ws, msg->id, "unknown_type");
            return;
        }

        break;

    case NGX_TELECLINIC_WS_SNAPSHOT_CONSENT:
        if (doctor) {
            ngx_teleclinic_session_refuse(ws, msg->id, "unknown_type");
            return;
        }

        break;

    case NGX_TELECLINIC_WS_CALL_NEXT:
    case NGX_TELECLINIC_WS_CALL:
    case NGX_TELECLINIC_WS_SKIP:
    case NGX_TELECLINIC_WS_NOSHOW:
    case NGX_TELECLINIC_WS_SNAPSHOT_REQUEST:
        if (!doctor) {
            ngx_teleclinic_session_refuse(ws, msg->id, "unknown_type");
            return;
        }

        break;
    }

    if (msg->code) {
        ngx_teleclinic_ws_send_error(ws, msg->id, msg->code, msg->message);
        return;
    }

    if (ngx_teleclinic_session_actor(s, &a, s->doctor, s->doctor_len)
        != NGX_OK)
    {
        ngx_teleclinic_session_refuse(ws, msg->id, "unavailable");
        return;
    }

    switch (msg->type) {

    case NGX_TELECLINIC_WS_ACCEPT:
    case NGX_TELECLINIC_WS_DECLINE:
        rc = ngx_teleclinic_room_answer(&a, msg->call,
                                        msg->type == NGX_TELECLINIC_WS_ACCEPT);
        break;

    case NGX_TELECLINIC_WS_LEAVE:
        rc = ngx_teleclinic_room_leave(&a);
        break;

    case NGX_TELECLINIC_WS_CALL_NEXT:
        rc = ngx_teleclinic_room_call(&a, 0);
        break;

    case NGX_TELECLINIC_WS_CALL:
        rc = ngx_teleclinic_room_call(&a, msg->appt);
        break;

    case NGX_TELECLINIC_WS_SKIP:
        rc = ngx_teleclinic_room_skip(&a, msg->appt);
        break;

    case NGX_TELECLINIC_WS_NOSHOW:
        rc = ngx_teleclinic_room_noshow(&a, msg->appt);
        break;

    case NGX_TELECLINIC_WS_SIGNAL:

        /* the data goes on as the client sent it, in our envelope */

        signal = json_pack("{s:i, s:s, s:s, s:s, s:O}", "v", 1,
                           "type", "signal",
                           "call", json_string_value(
                                       json_object_get(msg->root, "call")),
                           "from", doctor ? "doctor" : "patient",
                           "data", msg->data);
        data = signal ? json_dumps(signal, JSON_COMPACT) : NULL;
        json_decref(signal);

        if (data == NULL) {
            a.error = NGX_TELECLINIC_ROOM_ZONE_FULL;
            rc = NGX_ERROR;
            break;
        }

        rc = ngx_teleclinic_room_signal(&a, doctor, msg->call,
                                        (u_char *) data, ngx_strlen(data));
        free(data);
        break;

    case NGX_TELECLINIC_WS_MEDIA:
        rc = ngx_teleclinic_room_media(&a, doctor, msg->call, msg->media);
        break;

    case NGX_TELECLINIC_WS_HANGUP:
        rc = ngx_teleclinic_room_hangup(&a, doctor, msg->call);
        break;

    case NGX_TELECLINIC_WS_SNAPSHOT_REQUEST:
        rc = ngx_teleclinic_room_snapshot_request(&a, msg->call);
        break;

    case NGX_TELECLINIC_WS_SNAPSHOT_CONSENT:
        rc = ngx_teleclinic_room_snapshot_consent(&a, msg->call,
                                                  msg->request,
                                                  msg->granted);
        break;

    default:
        rc = NGX_DECLINED;
    }

    ngx_teleclinic_session_done(s, &a);

    if (rc != NGX_OK) {
        code = (a.error == NGX_TELECLINIC_ROOM_NONE)
               ? "unknown_type" : ngx_teleclinic_session_codes[a.error];
        ngx_teleclinic_session_refuse(ws, msg->id, code);
    }
}


static void
ngx_teleclinic_session_hello(ngx_teleclinic_ws_t *ws,
    ngx_teleclinic_session_t *s, ngx_teleclinic_ws_msg_t *msg)
{
    u_char                            buf[NGX_TELECLINIC_TIME_LEN];
    u_char                            hex[NGX_TELECLINIC_APPT_ID_LEN];
    json_t                           *reply;
    uint32_t                          version;
    uint64_t                          id;
    ngx_int_t                         rc;
    const char                       *err;
    ngx_teleclinic_token_t            t;
    ngx_teleclinic_actor_t            a;
    ngx_teleclinic_doctor_t          *d;
    ngx_teleclinic_directory_t       *dir;
    ngx_teleclinic_appt_t            *appt;
    ngx_str_t                         doctor;
    u_char                            doctor_buf[NGX_TELECLINIC_ID_MAX];
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_session_conf;

    if (tmcf == NULL) {
        ngx_teleclinic_session_refuse(ws, msg->id, "unavailable");
        return;
    }

    rc = ngx_teleclinic_token_verify(&tmcf->token_secret, &msg->token,
                                     ngx_time(), &t);

    /* a token of any other kind, however well signed, opens nothing */

    if (rc != NGX_OK
        || (t.kind != NGX_TELECLINIC_TOKEN_PATIENT
            && t.kind != NGX_TELECLINIC_TOKEN_DOCTOR)
        || (t.kind == NGX_TELECLINIC_TOKEN_PATIENT
            && ngx_teleclinic_token_appt(&t, &id, &version) != NGX_OK))
    {
        ngx_teleclinic_session_refuse(ws, msg->id, "unauthorized");
        ngx_teleclinic_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION,
                                "not authorized");
        return;
    }

    if (t.kind == NGX_TELECLINIC_TOKEN_DOCTOR) {

        /* a doctor taken out of the directory has no console */

        dir = ngx_http_teleclinic_directory(tmcf, ws->log);
        d = dir ? ngx_teleclinic_doctor_find(dir, &t.subject) : NULL;

        if (d == NULL) {
            ngx_teleclinic_session_refuse(ws, msg->id, "unauthorized");
            ngx_teleclinic_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION,
                                    "not authorized");
            return;
        }

        if (ngx_teleclinic_session_relay(s, &t.subject, msg) != NGX_DECLINED) {
            return;
        }

        if (ngx_teleclinic_session_actor(s, &a, t.subject.data,
                                         t.subject.len)
            != NGX_OK)
        {
            ngx_teleclinic_session_refuse(ws, msg->id, "unavailable");
            return;
        }

        ngx_teleclinic_session_slot(&a, d);

        if (ngx_teleclinic_room_console(&a) != NGX_OK) {
            err = ngx_teleclinic_session_codes[a.error];
            ngx_teleclinic_session_refuse(ws, msg->id, err);
            return;
        }

        s->doctor_len = t.subject.len;
        ngx_memcpy(s->doctor, t.subject.data, t.subject.len);
        ngx_teleclinic_session_role(s, NGX_TELECLINIC_ROLE_DOCTOR);

        reply = json_pack("{s:i, s:s, s:s, s:s%, s:i}", "v", 1,
                          "type", "welcome", "role", "doctor",
                          "doctor", s->doctor, s->doctor_len,
                          "average", (json_int_t) a.average);

    } else {

        if (ngx_teleclinic_session_actor(s, &a, NULL, 0) != NGX_OK) {
            ngx_teleclinic_session_refuse(ws, msg->id, "unavailable");
            return;
        }

        a.appt = id;
        a.version = version;

        /* the room is that of the appointment's doctor */

        ngx_teleclinic_zone_lock(a.zone);

        appt = ngx_teleclinic_appt_lookup(a.zone, id);

        if (appt) {
            doctor.len = appt->doctor_len;
            ngx_memcpy(doctor_buf, appt->doctor, appt->doctor_len);
        }

        ngx_teleclinic_zone_unlock(a.zone);

        doctor.data = doctor_buf;

        if (appt
            && ngx_teleclinic_session_relay(s, &doctor, msg) != NGX_DECLINED)
        {
            return;
        }

        err = (ngx_teleclinic_room_checkin(&a) == NGX_OK)
              ? NULL : ngx_teleclinic_session_codes[a.error];

        ngx_teleclinic_session_done(s, &a);

        if (err && a.error == NGX_TELECLINIC_ROOM_UNAUTHORIZED) {
            /* a token given before a cancellation or a reschedule */
            ngx_teleclinic_session_refuse(ws, msg->id, err);
            ngx_teleclinic_ws_close(ws, WSLAY_CODE_POLICY_VIOLATION,
                                    "not authorized");
            return;
        }

        if (err && a.opens_at) {
            reply = json_pack("{s:i, s:s, s:s, s:s, s:s%}", "v", 1,
                              "type", "error", "code", err,
                              "message", "check-in is not open yet",
                              "opens_at", buf,
                              (size_t) (ngx_teleclinic_time_print(buf,
                                                        a.opens_at) - buf));
            if (reply && msg->id) {
                json_object_set(reply, "id", msg->id);
            }

            ngx_teleclinic_ws_send_json(ws, reply);
            return;
        }

        if (err) {
            ngx_teleclinic_session_refuse(ws, msg->id, err);
            return;
        }

        s->appt = id;
        s->doctor_len = a.doctor.len;
        ngx_memcpy(s->doctor, a.doctor.data, a.doctor.len);
        ngx_teleclinic_session_role(s, NGX_TELECLINIC_ROLE_PATIENT);

        (void) ngx_teleclinic_appt_id_print(hex, id);

        reply = json_pack("{s:i, s:s, s:s, s:s%, s:s%, s:s%, s:s%}",
                          "v", 1, "type", "welcome", "role", "patient",
                          "appointment", hex, sizeof(hex),
                          "doctor", s->doctor, s->doctor_len,
                          "start", buf,
                          (size_t) (ngx_teleclinic_time_print(buf, a.start)
                                    - buf),
                          "status",
                          ngx_teleclinic_status_names[a.status].data,
                          ngx_teleclinic_status_names[a.status].len);
    }

    ngx_teleclinic_ws_joined(ws);

    if (reply && msg->id) {
        json_object_set(reply, "id", msg->id);
    }

    if (reply) {
        ngx_teleclinic_session_nodes(reply);
    }

    ngx_teleclinic_ws_send_json(ws, reply);
}


/*
 * With several nodes the doctor's room may be on another: the hello and
 * all that follows go there (ngx_http_teleclinic_relay.c).  NGX_DECLINED
 * when the room is here.
 */

static ngx_int_t
ngx_teleclinic_session_relay(ngx_teleclinic_session_t *s, ngx_str_t *doctor,
    ngx_teleclinic_ws_msg_t *msg)
{
    ngx_int_t  rc;

    if (s->ws->remote) {
        return NGX_DECLINED;             /* relayed here: the room is here */
    }

    rc = ngx_http_teleclinic_relay_open(s->ws, doctor, msg->root, &s->relay);

    if (rc == NGX_ERROR) {
        ngx_teleclinic_session_refuse(s->ws, msg->id, "unavailable");
    }

    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_teleclinic_session_elsewhere(s, doctor, msg);
}


/*
 * While Redis is away nothing can be relayed: a room stays on the node
 * it was on, and a client that comes to another is sent there, so that
 * the doctor and the patients still meet in one room.  Unless the client
 * says it could not reach that node (the hello's "unreachable"): the node
 * may have died meanwhile, and then the room is made here.  NGX_DECLINED
 * when the room is here.
 */

static ngx_int_t
ngx_teleclinic_session_elsewhere(ngx_teleclinic_session_t *s,
    ngx_str_t *doctor, ngx_teleclinic_ws_msg_t *msg)
{
    u_char                 *url;
    json_t                 *v, *reply, *nodes;
    size_t                  i;
    ngx_str_t              *mine;
    ngx_teleclinic_node_t   home;

    if (ngx_teleclinic_mirror_last_home(doctor, &home) == NGX_OK) {
        return NGX_DECLINED;
    }

    /* checked by the parser: strings */

    json_array_foreach(msg->unreachable, i, v) {
        url = (u_char *) json_string_value(v);

        if (json_string_length(v) == home.url_len
            && ngx_memcmp(url, home.url, home.url_len) == 0)
        {
            return NGX_DECLINED;
        }
    }

    ngx_log_error(NGX_LOG_INFO, s->ws->log, 0,
                  "teleclinic session: Redis is away, the room is on "
                  "node \"%*s\"", home.len, home.name);

    mine = ngx_teleclinic_mirror_url();

    nodes = json_pack("[s%]", home.url, home.url_len);

    if (nodes && mine->len) {
        json_array_append_new(nodes, json_stringn((char *) mine->data,
                                                  mine->len));
    }

    reply = json_pack("{s:i, s:s, s:s, s:s, s:o*}", "v", 1,
                      "type", "error", "code", "room_elsewhere",
                      "message", "the room is on another node for now",
                      "nodes", nodes);

    if (reply && msg->id) {
        json_object_set(reply, "id", msg->id);
    }

    ngx_teleclinic_ws_send_json(s->ws, reply);
    ngx_teleclinic_ws_close(s->ws, NGX_HTTP_TELECLINIC_WS_AWAY,
                            "the room is out of reach");

    return NGX_OK;
}


/*
 * With several nodes, the welcome lists the nodes' public URLs, this
 * one's first: the browser app tries the next when its node goes.
 */

static void
ngx_teleclinic_session_nodes(json_t *reply)
{
    u_char      buf[NGX_TELECLINIC_SESSION_NODES * NGX_TELECLINIC_URL_MAX];
    json_t     *nodes;
    ngx_str_t   urls[NGX_TELECLINIC_SESSION_NODES];
    ngx_uint_t  i, n;

    n = ngx_teleclinic_mirror_urls(urls, NGX_TELECLINIC_SESSION_NODES, buf);

    if (n == 0) {
        return;
    }

    nodes = json_array();

    for (i = 0; nodes && i < n; i++) {
        json_array_append_new(nodes,
                              json_stringn((char *) urls[i].data, urls[i].len));
    }

    json_object_set_new(reply, "nodes", nodes);
}


/* who acts, for the room: this connection, now */

static ngx_int_t
ngx_teleclinic_session_actor(ngx_teleclinic_session_t *s,
    ngx_teleclinic_actor_t *a, u_char *doctor, size_t len)
{
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_teleclinic_session_conf;

    if (tmcf == NULL || len > NGX_TELECLINIC_ID_MAX) {
        return NGX_ERROR;
    }

    ngx_memzero(a, sizeof(ngx_teleclinic_actor_t));

    a->zone = ngx_http_teleclinic_zone(tmcf);
    a->conf = &tmcf->room;
    a->log = s ? s->ws->log : ngx_cycle->log;
    a->serial = s ? s->serial : 0;
    a->now = ngx_time();
    a->appt = s ? s->appt : 0;

    a->doctor.data = a->doctor_buf;
    a->doctor.len = len;
    ngx_memcpy(a->doctor_buf, doctor, len);

    return NGX_OK;
}


/*
 * The doctor's slot length, which stands for the average visit before
 * the doctor's first: only what shows the average needs it.
 */

static void
ngx_teleclinic_session_slot(ngx_teleclinic_actor_t *a,
    ngx_teleclinic_doctor_t *d)
{
    ngx_teleclinic_directory_t  *dir;

    if (d == NULL) {
        dir = ngx_http_teleclinic_directory(ngx_teleclinic_session_conf,
                                            a->log);

        d = dir ? ngx_teleclinic_doctor_find(dir, &a->doctor) : NULL;
    }

    a->slot_seconds = d ? d->slot_minutes * 60 : 1800;
}


/* after an operation: its timer, and the journal's records to disk */

static void
ngx_teleclinic_session_done(ngx_teleclinic_session_t *s,
    ngx_teleclinic_actor_t *a)
{
    ngx_teleclinic_session_timer(a);

    if (!a->committed || s->syncing) {
        return;
    }

    /*
     * Nobody waits for it: the change is in the file already and safe
     * from a crash of nginx; this makes it safe from one of the machine
     * as soon as the next group commit is done.
     */

    s->waiter.handler = ngx_teleclinic_session_synced;
    s->waiter.data = s;
    s->waiter.log = a->log;
    s->syncing = 1;

    ngx_teleclinic_journal_sync(a->zone->journal, &s->waiter);
}


static void
ngx_teleclinic_session_synced(void *data, ngx_int_t rc)
{
    ngx_teleclinic_session_t  *s = data;

    s->syncing = 0;
}


static void
ngx_teleclinic_session_refuse(ngx_teleclinic_ws_t *ws, json_t *id,
    const char *code)
{
    ngx_teleclinic_refusal_t  *r;

    for (r = ngx_teleclinic_refusals; r->code; r++) {
        if (ngx_strcmp(r->code, code) == 0) {
            break;
        }
    }

    ngx_teleclinic_ws_send_error(ws, id, code, r->message);
}


/* the connections by role, for the metrics; -1: the connection ends */

static void
ngx_teleclinic_session_role(ngx_teleclinic_session_t *s, ngx_uint_t role)
{
    ngx_atomic_t           *sockets;
    ngx_teleclinic_zone_t  *zone;

    if (ngx_teleclinic_session_conf == NULL) {
        s->role = role;
        return;
    }

    zone = ngx_http_teleclinic_zone(ngx_teleclinic_session_conf);
    sockets = zone->sh->rooms->metrics.sockets;

    if (role != NGX_TELECLINIC_ROLE_NONE) {
        (void) ngx_atomic_fetch_add(&sockets[s->role], -1);
    }

    if (role != (ngx_uint_t) -1) {
        (void) ngx_atomic_fetch_add(&sockets[role], 1);
        s->role = role;
    }
}


/* mail from the bus, in batches that end with NULL */

static void
ngx_teleclinic_session_mail(ngx_teleclinic_mail_t *mail)
{
    ngx_uint_t                 i;
    ngx_teleclinic_session_t  *s;

    if (mail == NULL) {
        for (i = 0; i < ngx_teleclinic_nchanged; i++) {
            ngx_teleclinic_session_room_changed(
                ngx_teleclinic_changed[i].doctor,
                ngx_teleclinic_changed[i].len);
        }

        ngx_teleclinic_nchanged = 0;
        return;
    }

    switch (mail->kind) {

    case NGX_TELECLINIC_MAIL_SEND:
        ngx_teleclinic_session_send(mail->serial, mail->data, mail->len);
        break;

    case NGX_TELECLINIC_MAIL_CLOSE:
        s = ngx_teleclinic_session_find(mail->serial);

        if (s) {
            ngx_teleclinic_ws_close(s->ws, 4409, "connected elsewhere");
        }

        break;

    case NGX_TELECLINIC_MAIL_ROOM:

        if (mail->len > NGX_TELECLINIC_ID_MAX) {
            break;
        }

        /* a room that changed ten times in the batch is looked at once */

        for (i = 0; i < ngx_teleclinic_nchanged; i++) {
            if (ngx_teleclinic_changed[i].len == mail->len
                && ngx_memcmp(ngx_teleclinic_changed[i].doctor, mail->data,
                              mail->len) == 0)
            {
                break;
            }
        }

        if (i < ngx_teleclinic_nchanged) {
            break;
        }

        if (ngx_teleclinic_nchanged == NGX_TELECLINIC_CHANGED_MAX) {
            ngx_teleclinic_session_room_changed(mail->data, mail->len);
            break;
        }

        ngx_teleclinic_changed[i].len = mail->len;
        ngx_memcpy(ngx_teleclinic_changed[i].doctor, mail->data, mail->len);
        ngx_teleclinic_nchanged++;
        break;
    }
}


static void
ngx_teleclinic_session_room_changed(u_char *doctor, size_t len)
{
    ngx_teleclinic_actor_t  a;

    if (ngx_teleclinic_session_actor(NULL, &a, doctor, len) != NGX_OK) {
        return;
    }

    ngx_teleclinic_session_slot(&a, NULL);
    ngx_teleclinic_room_update(&a, ngx_teleclinic_session_send,
                               ngx_teleclinic_session_ahead);
}


static void
ngx_teleclinic_session_send(ngx_uint_t serial, u_char *text, size_t len)
{
    ngx_teleclinic_session_t  *s;

    s = ngx_teleclinic_session_find(serial);

    if (s) {
        ngx_teleclinic_ws_send_text(s->ws, text, len);
    }
}


/*
 * At thousands of patients nothing of theirs is in the caches any more,
 * and a send waited for each of what it touches in turn: the session,
 * the WebSocket, the request, the connection and its write event, each
 * found through the one before.  So each of the sends ahead takes one
 * step of that chain, the last first: the step before has brought its
 * link in by then, and what the send needs is there when its turn comes.
 */

static void
ngx_teleclinic_session_ahead(ngx_uint_t serial, ngx_uint_t distance)
{
    ngx_connection_t          *c;
    ngx_teleclinic_ws_t       *ws;
    ngx_teleclinic_session_t  *s;

    if (ngx_teleclinic_sessions == NULL) {
        return;
    }

    if (distance == NGX_TELECLINIC_AHEAD) {
        ngx_teleclinic_prefetch(ngx_teleclinic_sessions[serial
                                             & ngx_teleclinic_sessions_mask]);
        return;
    }

    s = ngx_teleclinic_session_find(serial);

    if (s == NULL) {
        return;
    }

    ws = s->ws;

    if (ws->request == NULL) {
        return;                          /* a remote one: no socket here */
    }

    switch (distance) {

    case 4:
        /* its first line, the output's, and the last, with the flags */
        ngx_teleclinic_prefetch(ws);
        ngx_teleclinic_prefetch(&ws->out);
        ngx_teleclinic_prefetch((u_char *) (ws + 1) - 1);
        break;

    case 3:
        ngx_teleclinic_prefetch(ws->request);
        break;

    case 2:
        c = ws->request->connection;
        ngx_teleclinic_prefetch(c);
        ngx_teleclinic_prefetch(&c->sent);
        ngx_teleclinic_prefetch((u_char *) (c + 1) - 1);
        break;

    case 1:
        ngx_teleclinic_prefetch(ws->request->connection->write);
        break;
    }
}


static ngx_teleclinic_session_t *
ngx_teleclinic_session_find(ngx_uint_t serial)
{
    ngx_teleclinic_session_t  *s;

    if (ngx_teleclinic_sessions == NULL) {
        return NULL;
    }

    for (s = ngx_teleclinic_sessions[serial & ngx_teleclinic_sessions_mask];
         s;
         s = s->next)
    {
        if (s->serial == serial) {
            return s;
        }
    }

    return NULL;
}


/*
 * A ring's timeout or a grace period ends at a->timer: this worker looks
 * at the room then.  Other workers' operations would find it out too,
 * but the people waiting should learn it on time.
 */

static void
ngx_teleclinic_session_timer(ngx_teleclinic_actor_t *a)
{
    ngx_msec_t               ms;
    ngx_teleclinic_sweep_t  *sw;

    if (a->timer == 0) {
        return;
    }

    sw = ngx_calloc(sizeof(ngx_teleclinic_sweep_t), a->log);
    if (sw == NULL) {
        return;
    }

    sw->doctor_len = a->doctor.len;
    ngx_memcpy(sw->doctor, a->doctor.data, a->doctor.len);

    sw->event.handler = ngx_teleclinic_session_sweep;
    sw->event.data = sw;
    sw->event.log = ngx_cycle->log;

    /* an exiting worker does not wait for it: another one sweeps */
    sw->event.cancelable = 1;

    /* the room counts whole seconds: be past the second it named */
    ms = (a->timer > a->now ? (ngx_msec_t) (a->timer - a->now) * 1000 : 0)
         + 50;

    ngx_add_timer(&sw->event, ms);

    a->timer = 0;
}


static void
ngx_teleclinic_session_day_end(ngx_event_t *ev)
{
    ngx_msec_t              ms;
    ngx_teleclinic_actor_t  a;

    if (ngx_teleclinic_session_actor(NULL, &a, NULL, 0) != NGX_OK) {
        return;
    }

    ngx_teleclinic_room_day_end(&a);

    /* a second past midnight, the day's last appointments included */
    ms = (a.timer > a.now ? (ngx_msec_t) (a.timer - a.now) * 1000 : 0)
         + 1000;

    ngx_add_timer(ev, ms);
}


/*
 * With several nodes a room is served where its clients are only while
 * it is this node's, or while Redis is away (see session_elsewhere).
 * When the nodes alive change (a node came back, or a new one), or Redis
 * is back after a while away, a client here whose room is another
 * node's now connects again (1012), is relayed there, and the doctor and
 * the patients are in one room again; a call in it is given back there.
 * What this node has left of such rooms goes.  Connections relayed from
 * here are the relay's to check.
 */

static void
ngx_teleclinic_session_homes(ngx_event_t *ev)
{
    ngx_str_t                   doctor;
    ngx_uint_t                  i, up, version, v;
    ngx_teleclinic_node_t       home;
    ngx_teleclinic_zone_t      *zone;
    ngx_teleclinic_session_t   *s, *next;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, NGX_TELECLINIC_SESSION_HOMES);

    up = ngx_teleclinic_mirror_up();

    if (!up) {
        ngx_teleclinic_homes_up = 0;
        return;
    }

    if (!ngx_teleclinic_homes_up) {
        ngx_teleclinic_homes_up = 1;
        ngx_teleclinic_homes_back = ngx_current_msec;
        ngx_teleclinic_homes_version = (ngx_uint_t) -1;
    }

    if (ngx_current_msec - ngx_teleclinic_homes_back
        < NGX_TELECLINIC_SESSION_SETTLE)
    {
        return;
    }

    version = ngx_teleclinic_mirror_nodes_version();

    if (version == ngx_teleclinic_homes_version) {
        return;
    }

    ngx_teleclinic_homes_version = version;

    for (i = 0; ngx_teleclinic_sessions && i <= ngx_teleclinic_sessions_mask;
         i++)
    {
        for (s = ngx_teleclinic_sessions[i]; s; s = next) {
            next = s->next;

            if (s->doctor_len == 0 || s->relay) {
                continue;
            }

            doctor.data = s->doctor;
            doctor.len = s->doctor_len;

            if (ngx_teleclinic_mirror_home(&doctor, &home, &v)
                == NGX_DECLINED)
            {
                ngx_teleclinic_ws_close(s->ws, NGX_HTTP_TELECLINIC_WS_MOVED,
                                        "the room moved");
            }
        }
    }

    /* what is left here of those rooms goes, whichever worker sees it */

    zone = ngx_http_teleclinic_zone(ngx_teleclinic_session_conf);

    ngx_teleclinic_zone_lock(zone);
    ngx_teleclinic_room_release_locked(zone, ngx_teleclinic_mirror_here_locked);
    ngx_teleclinic_zone_unlock(zone);
}


static void
ngx_teleclinic_session_sweep(ngx_event_t *ev)
{
    ngx_teleclinic_sweep_t  *sw = ev->data;

    ngx_teleclinic_actor_t  a;

    if (ngx_teleclinic_session_actor(NULL, &a, sw->doctor, sw->doctor_len)
        == NGX_OK)
    {
        ngx_teleclinic_room_sweep(&a);
    }

    ngx_free(sw);
}
