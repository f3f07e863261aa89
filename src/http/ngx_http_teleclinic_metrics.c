
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_teleclinic_util.h"
#include "ngx_http_teleclinic_metrics.h"
#include "ngx_teleclinic_record.h"
#include "ngx_teleclinic_turn.h"


/*
 * The pilot's figures: calls, their outcome, how long visits and waits
 * take, queues and connections.  Counters live in the zone, so every
 * worker answers with the same numbers.  No patient is named here; the
 * doctors' ids label the queues.
 */


#define NGX_TELECLINIC_METRICS_MAX   (128 * 1024)
#define NGX_TELECLINIC_METRICS_ROOMS  1000


/* a queue's line, copied under the zone lock and printed after it */
typedef struct {
    size_t                        doctor_len;
    u_char                        doctor[NGX_TELECLINIC_ID_MAX];
    ngx_uint_t                    nwaiting;
} ngx_teleclinic_metrics_queue_t;


static ngx_int_t ngx_teleclinic_metrics_handler(ngx_http_request_t *r);
static u_char *ngx_teleclinic_metrics_histogram(u_char *p, u_char *last,
    const char *name, const char *help, ngx_uint_t *counts,
    const char **bounds, ngx_uint_t sum, ngx_uint_t count);


static const char  *ngx_teleclinic_fail_names[] = {
    "declined", "timeout", "cancelled", "dropped", "no_media"
};

static const char  *ngx_teleclinic_role_names[] = {
    "none", "patient", "doctor"
};

/* as the room's buckets, in its order; the last is +Inf */
static const char  *ngx_teleclinic_visit_bounds[] = {
    "60", "180", "300", "600", "900", "1200", "1800", "2700", "3600", "+Inf"
};

static const char  *ngx_teleclinic_wait_bounds[] = {
    "30", "60", "120", "300", "600", "900", "1200", "1800", "3600", "+Inf"
};


char *
ngx_teleclinic_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_teleclinic_module);

    if (tmcf->shm_zone == NULL) {
        return "needs a \"teleclinic_zone\" before it";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_teleclinic_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_teleclinic_metrics_handler(ngx_http_request_t *r)
{
    u_char                           *p, *last;
    ngx_int_t                         rc;
    ngx_uint_t                        i, n;
    ngx_buf_t                        *b;
    ngx_chain_t                       out;
    ngx_uint_t                        nstatus[NGX_TELECLINIC_NSTATUS];
    ngx_rbtree_node_t                *node, *root, *sentinel;
    ngx_teleclinic_sh_t              *sh;
    ngx_teleclinic_zone_t            *zone;
    ngx_teleclinic_room_t            *room;
    ngx_uint_t                        closed, ratings[5], rated, sum;
    ngx_teleclinic_metrics_t          m;
    ngx_teleclinic_metrics_queue_t   *queues;
    ngx_http_teleclinic_main_conf_t  *tmcf;

    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    tmcf = ngx_http_get_module_main_conf(r, ngx_http_teleclinic_module);
    zone = ngx_http_teleclinic_zone(tmcf);
    sh = zone->sh;

    b = ngx_create_temp_buf(r->pool, NGX_TELECLINIC_METRICS_MAX);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    queues = ngx_palloc(r->pool, NGX_TELECLINIC_METRICS_ROOMS
                                 * sizeof(ngx_teleclinic_metrics_queue_t));
    if (queues == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the numbers are copied under the lock, the page printed after it */

    ngx_teleclinic_zone_lock(zone);

    m = sh->rooms->metrics;
    closed = 0;
    ngx_memzero(ratings, sizeof(ratings));

    if (sh->records) {
        closed = sh->records->closed;
        ngx_memcpy(ratings, sh->records->ratings, sizeof(ratings));
    }

    ngx_memcpy(nstatus, sh->nstatus, sizeof(nstatus));

    root = sh->rooms->rooms.root;
    sentinel = sh->rooms->rooms.sentinel;
    n = 0;

    if (root != sentinel) {
        for (node = ngx_rbtree_min(root, sentinel);
             node && n < NGX_TELECLINIC_METRICS_ROOMS;
             node = ngx_rbtree_next(&sh->rooms->rooms, node), n++)
        {
            room = (ngx_teleclinic_room_t *) node;

            queues[n].doctor_len = room->doctor_len;
            ngx_memcpy(queues[n].doctor, room->doctor, room->doctor_len);
            queues[n].nwaiting = room->nwaiting;
        }
    }

    ngx_teleclinic_zone_unlock(zone);

    p = b->pos;
    last = b->end;

    p = ngx_slprintf(p, last,
            "# HELP teleclinic_calls_started_total Calls a doctor rang.\n"
            "# TYPE teleclinic_calls_started_total counter\n"
            "teleclinic_calls_started_total %ui\n"
            "# HELP teleclinic_calls_answered_total Calls the patient "
            "accepted.\n"
            "# TYPE teleclinic_calls_answered_total counter\n"
            "teleclinic_calls_answered_total %ui\n"
            "# HELP teleclinic_calls_connected_total Calls whose media "
            "connected, as a participant's browser reported.\n"
            "# TYPE teleclinic_calls_connected_total counter\n"
            "teleclinic_calls_connected_total %ui\n"
            "# HELP teleclinic_calls_failed_total Calls that failed, by "
            "reason.\n"
            "# TYPE teleclinic_calls_failed_total counter\n",
            m.started, m.answered, m.connected);

    for (i = 0; i < NGX_TELECLINIC_NFAIL; i++) {
        p = ngx_slprintf(p, last,
                         "teleclinic_calls_failed_total{reason=\"%s\"} %ui\n",
                         ngx_teleclinic_fail_names[i], m.failed[i]);
    }

    p = ngx_teleclinic_metrics_histogram(p, last,
            "teleclinic_consultation_duration_seconds",
            "Length of finished video visits.", m.visit,
            ngx_teleclinic_visit_bounds, m.visit_sum, m.visit_count);

    p = ngx_teleclinic_metrics_histogram(p, last,
            "teleclinic_waiting_time_seconds",
            "Time from check-in to the answered call.", m.wait,
            ngx_teleclinic_wait_bounds, m.wait_sum, m.wait_count);

    p = ngx_slprintf(p, last,
            "# HELP teleclinic_queue_length Patients in a doctor's "
            "queue, not yet in the call.\n"
            "# TYPE teleclinic_queue_length gauge\n");

    for (i = 0; i < n; i++) {
        /* doctor ids are [a-z0-9-]: nothing to escape in a label */
        p = ngx_slprintf(p, last,
                         "teleclinic_queue_length{doctor=\"%*s\"} %ui\n",
                         queues[i].doctor_len, queues[i].doctor,
                         queues[i].nwaiting);
    }

    p = ngx_slprintf(p, last,
            "# HELP teleclinic_appointments Appointments in the zone, by "
            "status.\n"
            "# TYPE teleclinic_appointments gauge\n");

    for (i = 0; i < NGX_TELECLINIC_NSTATUS; i++) {
        p = ngx_slprintf(p, last,
                         "teleclinic_appointments{status=\"%V\"} %ui\n",
                         &ngx_teleclinic_status_names[i], nstatus[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP teleclinic_websocket_connections Open WebSocket "
            "connections, by who said hello.\n"
            "# TYPE teleclinic_websocket_connections gauge\n");

    for (i = 0; i < 3; i++) {
        p = ngx_slprintf(p, last,
                         "teleclinic_websocket_connections{role=\"%s\"} "
                         "%uA\n",
                         ngx_teleclinic_role_names[i], m.sockets[i]);
    }

    p = ngx_slprintf(p, last,
            "# HELP teleclinic_doctor_login_checks_total Doctor logins "
            "whose password was checked (made-up doctor ids too).\n"
            "# TYPE teleclinic_doctor_login_checks_total counter\n"
            "teleclinic_doctor_login_checks_total %uA\n"
            "# HELP teleclinic_doctor_login_refused_total Doctor logins "
            "refused before a check, by reason.\n"
            "# TYPE teleclinic_doctor_login_refused_total counter\n"
            "teleclinic_doctor_login_refused_total"
            "{reason=\"too_many_attempts\"} %uA\n"
            "teleclinic_doctor_login_refused_total{reason=\"busy\"} %uA\n"
            "# HELP teleclinic_doctor_login_dropped_total Doctor logins "
            "dropped unchecked: the client went away first.\n"
            "# TYPE teleclinic_doctor_login_dropped_total counter\n"
            "teleclinic_doctor_login_dropped_total %uA\n",
            sh->logins.checks, sh->logins.locked, sh->logins.busy,
            sh->logins.dropped);

    p = ngx_slprintf(p, last,
            "# HELP teleclinic_records_closed_total Visit records their "
            "doctor closed.\n"
            "# TYPE teleclinic_records_closed_total counter\n"
            "teleclinic_records_closed_total %ui\n"
            "# HELP teleclinic_rating Patients' ratings of their visits, "
            "1 to 5.\n"
            "# TYPE teleclinic_rating histogram\n", closed);

    for (i = 0, rated = 0, sum = 0; i < 5; i++) {
        rated += ratings[i];
        sum += (i + 1) * ratings[i];

        p = ngx_slprintf(p, last, "teleclinic_rating_bucket{le=\"%ui\"} %ui\n",
                         i + 1, rated);
    }

    p = ngx_slprintf(p, last,
                     "teleclinic_rating_bucket{le=\"+Inf\"} %ui\n"
                     "teleclinic_rating_sum %ui\n"
                     "teleclinic_rating_count %ui\n", rated, sum, rated);

    /* the stream side's relay, when this nginx has one */
    p = ngx_teleclinic_turn_metrics((ngx_cycle_t *) ngx_cycle, p, last);

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_teleclinic_metrics_histogram(u_char *p, u_char *last, const char *name,
    const char *help, ngx_uint_t *counts, const char **bounds,
    ngx_uint_t sum, ngx_uint_t count)
{
    ngx_uint_t  i, cumulative;

    p = ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s histogram\n",
                     name, help, name);

    cumulative = 0;

    for (i = 0; i < NGX_TELECLINIC_HISTOGRAM; i++) {
        cumulative += counts[i];
        p = ngx_slprintf(p, last, "%s_bucket{le=\"%s\"} %ui\n",
                         name, bounds[i], cumulative);
    }

    return ngx_slprintf(p, last, "%s_sum %ui\n%s_count %ui\n",
                        name, sum, name, count);
}
