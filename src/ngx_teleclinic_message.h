
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_MESSAGE_H_INCLUDED_
#define _NGX_TELECLINIC_MESSAGE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic.h"


/* the WebSocket protocol's client messages (README, "Waiting room") */
#define NGX_TELECLINIC_WS_HELLO       1
#define NGX_TELECLINIC_WS_ECHO        2
#define NGX_TELECLINIC_WS_ACCEPT      3
#define NGX_TELECLINIC_WS_DECLINE     4
#define NGX_TELECLINIC_WS_LEAVE       5
#define NGX_TELECLINIC_WS_CALL_NEXT   6
#define NGX_TELECLINIC_WS_CALL        7
#define NGX_TELECLINIC_WS_SKIP        8
#define NGX_TELECLINIC_WS_NOSHOW      9
#define NGX_TELECLINIC_WS_SIGNAL      10
#define NGX_TELECLINIC_WS_MEDIA       11
#define NGX_TELECLINIC_WS_HANGUP      12
#define NGX_TELECLINIC_WS_SNAPSHOT_REQUEST  13
#define NGX_TELECLINIC_WS_SNAPSHOT_CONSENT  14

/* what a "media" message reports */
#define NGX_TELECLINIC_MEDIA_CONNECTED  1
#define NGX_TELECLINIC_MEDIA_FAILED     2


/*
 * One client message, checked: the type and the fields it must have.
 * Strings and "data" point into root, valid until it is freed.
 */
/* a hello's "unreachable": URLs of nodes, as long as a node's may be */
#define NGX_TELECLINIC_WS_URLS        16
#define NGX_TELECLINIC_WS_URL_MAX     128


typedef struct {
    json_t                       *root;
    json_t                       *id;        /* the client's, or NULL */
    ngx_uint_t                    type;
    ngx_str_t                     token;     /* hello */
    json_t                       *unreachable;  /* hello, or NULL */
    uint64_t                      call;      /* accept ... hangup */
    uint64_t                      appt;      /* call, skip, noshow */
    json_t                       *data;      /* echo, signal */
    ngx_uint_t                    media;     /* media */
    ngx_uint_t                    request;   /* snapshot_consent */
    ngx_uint_t                    granted;

    const char                   *code;      /* when it is refused */
    const char                   *message;
} ngx_teleclinic_ws_msg_t;


/*
 * Parses untrusted bytes without nginx's runtime (the fuzz target links
 * it alone).  NGX_OK, or NGX_ERROR with code and message set, and type
 * set when only the fields are wrong; root is kept in both cases when it
 * parsed (an error answer echoes the id), and ngx_teleclinic_ws_msg_free()
 * releases it.
 */
ngx_int_t ngx_teleclinic_ws_msg_parse(const u_char *text, size_t len,
    ngx_teleclinic_ws_msg_t *msg);
void ngx_teleclinic_ws_msg_free(ngx_teleclinic_ws_msg_t *msg);


#endif /* _NGX_TELECLINIC_MESSAGE_H_INCLUDED_ */
