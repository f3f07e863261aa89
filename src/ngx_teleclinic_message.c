
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic_message.h"
#include "ngx_teleclinic_request.h"
#include "ngx_teleclinic_token.h"


/* what each type must carry */
#define NGX_TELECLINIC_NEEDS_TOKEN    0x01
#define NGX_TELECLINIC_NEEDS_CALL     0x02
#define NGX_TELECLINIC_NEEDS_APPT     0x04
#define NGX_TELECLINIC_NEEDS_DATA     0x08
#define NGX_TELECLINIC_NEEDS_MEDIA    0x10
#define NGX_TELECLINIC_NEEDS_CONSENT  0x20

/* snapshot request ids: numbers that JavaScript holds exactly */
#define NGX_TELECLINIC_WS_REQUEST_MAX  ((((json_int_t) 1) << 53) - 1)


typedef struct {
    const char                   *name;
    ngx_uint_t                    type;
    ngx_uint_t                    needs;
} ngx_teleclinic_ws_type_t;


static ngx_teleclinic_ws_type_t  ngx_teleclinic_ws_types[] = {
    { "hello", NGX_TELECLINIC_WS_HELLO, NGX_TELECLINIC_NEEDS_TOKEN },
    { "echo", NGX_TELECLINIC_WS_ECHO, 0 },
    { "accept", NGX_TELECLINIC_WS_ACCEPT, NGX_TELECLINIC_NEEDS_CALL },
    { "decline", NGX_TELECLINIC_WS_DECLINE, NGX_TELECLINIC_NEEDS_CALL },
    { "leave", NGX_TELECLINIC_WS_LEAVE, 0 },
    { "call_next", NGX_TELECLINIC_WS_CALL_NEXT, 0 },
    { "call", NGX_TELECLINIC_WS_CALL, NGX_TELECLINIC_NEEDS_APPT },
    { "skip", NGX_TELECLINIC_WS_SKIP, NGX_TELECLINIC_NEEDS_APPT },
    { "noshow", NGX_TELECLINIC_WS_NOSHOW, NGX_TELECLINIC_NEEDS_APPT },
    { "signal", NGX_TELECLINIC_WS_SIGNAL,
      NGX_TELECLINIC_NEEDS_CALL|NGX_TELECLINIC_NEEDS_DATA },
    { "media", NGX_TELECLINIC_WS_MEDIA,
      NGX_TELECLINIC_NEEDS_CALL|NGX_TELECLINIC_NEEDS_MEDIA },
    { "hangup", NGX_TELECLINIC_WS_HANGUP, NGX_TELECLINIC_NEEDS_CALL },
    { "snapshot_request", NGX_TELECLINIC_WS_SNAPSHOT_REQUEST,
      NGX_TELECLINIC_NEEDS_CALL },
    { "snapshot_consent", NGX_TELECLINIC_WS_SNAPSHOT_CONSENT,
      NGX_TELECLINIC_NEEDS_CALL|NGX_TELECLINIC_NEEDS_CONSENT },
    { NULL, 0, 0 }
};


static ngx_int_t ngx_teleclinic_ws_msg_refuse(ngx_teleclinic_ws_msg_t *msg,
    const char *code, const char *message);
static ngx_int_t ngx_teleclinic_ws_msg_urls(json_t *list);
static ngx_int_t ngx_teleclinic_ws_msg_id(json_t *root, const char *key,
    uint64_t *id);


ngx_int_t
ngx_teleclinic_ws_msg_parse(const u_char *text, size_t len,
    ngx_teleclinic_ws_msg_t *msg)
{
    json_t                    *root, *v, *type, *token, *media, *request;
    const char                *s;
    json_error_t               err;
    ngx_teleclinic_ws_type_t  *t;

    ngx_memzero(msg, sizeof(ngx_teleclinic_ws_msg_t));

    root = json_loadb((const char *) text, len, JSON_REJECT_DUPLICATES, &err);

    if (root == NULL) {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "a message is a JSON object");
    }

    msg->root = root;

    if (!json_is_object(root)) {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "a message is a JSON object");
    }

    /* an "id" of the client's comes back with the answer */
    msg->id = json_object_get(root, "id");

    if (msg->id && !json_is_string(msg->id) && !json_is_integer(msg->id)) {
        msg->id = NULL;
    }

    v = json_object_get(root, "v");

    if (!json_is_integer(v) || json_integer_value(v) != 1) {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "\"v\" must be 1");
    }

    type = json_object_get(root, "type");

    if (!json_is_string(type)) {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "\"type\" must be a string");
    }

    s = json_string_value(type);

    for (t = ngx_teleclinic_ws_types; t->name; t++) {
        if (ngx_strcmp(s, t->name) == 0) {
            break;
        }
    }

    if (t->name == NULL) {
        return ngx_teleclinic_ws_msg_refuse(msg, "unknown_type",
                                            "no such message type");
    }

    msg->type = t->type;

    if (t->needs & NGX_TELECLINIC_NEEDS_TOKEN) {
        token = json_object_get(root, "token");

        if (!json_is_string(token)
            || json_string_length(token) == 0
            || json_string_length(token) > NGX_TELECLINIC_TOKEN_MAX)
        {
            return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                                "\"token\" must be a token");
        }

        msg->token.data = (u_char *) json_string_value(token);
        msg->token.len = json_string_length(token);

        /* the nodes the client could not reach, their welcome's URLs */
        v = json_object_get(root, "unreachable");

        if (v && ngx_teleclinic_ws_msg_urls(v) != NGX_OK) {
            return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                                "\"unreachable\" must be a "
                                                "list of node URLs");
        }

        msg->unreachable = v;
    }

    if ((t->needs & NGX_TELECLINIC_NEEDS_CALL)
        && ngx_teleclinic_ws_msg_id(root, "call", &msg->call) != NGX_OK)
    {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "\"call\" must be a call id");
    }

    if ((t->needs & NGX_TELECLINIC_NEEDS_APPT)
        && ngx_teleclinic_ws_msg_id(root, "appointment", &msg->appt)
           != NGX_OK)
    {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "\"appointment\" must be an "
                                            "appointment id");
    }

    msg->data = json_object_get(root, "data");

    if ((t->needs & NGX_TELECLINIC_NEEDS_DATA) && !json_is_object(msg->data))
    {
        return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                            "\"data\" must be an object");
    }

    if (t->needs & NGX_TELECLINIC_NEEDS_MEDIA) {
        media = json_object_get(root, "state");
        s = json_is_string(media) ? json_string_value(media) : "";

        if (ngx_strcmp(s, "connected") == 0) {
            msg->media = NGX_TELECLINIC_MEDIA_CONNECTED;

        } else if (ngx_strcmp(s, "failed") == 0) {
            msg->media = NGX_TELECLINIC_MEDIA_FAILED;

        } else {
            return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                                "\"state\" must be "
                                                "\"connected\" or "
                                                "\"failed\"");
        }
    }

    if (t->needs & NGX_TELECLINIC_NEEDS_CONSENT) {
        request = json_object_get(root, "request");

        if (!json_is_integer(request)
            || json_integer_value(request) < 1
            || json_integer_value(request) > NGX_TELECLINIC_WS_REQUEST_MAX)
        {
            return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                                "\"request\" must be a "
                                                "request id");
        }

        msg->request = (ngx_uint_t) json_integer_value(request);

        v = json_object_get(root, "granted");

        if (!json_is_boolean(v)) {
            return ngx_teleclinic_ws_msg_refuse(msg, "bad_message",
                                                "\"granted\" must be true "
                                                "or false");
        }

        msg->granted = json_is_true(v);
    }

    return NGX_OK;
}


void
ngx_teleclinic_ws_msg_free(ngx_teleclinic_ws_msg_t *msg)
{
    if (msg->root) {
        json_decref(msg->root);
        msg->root = NULL;
    }
}


static ngx_int_t
ngx_teleclinic_ws_msg_refuse(ngx_teleclinic_ws_msg_t *msg, const char *code,
    const char *message)
{
    msg->code = code;
    msg->message = message;

    return NGX_ERROR;
}


/* the hello's "unreachable": a short list of URLs, as the welcome gave */

static ngx_int_t
ngx_teleclinic_ws_msg_urls(json_t *list)
{
    size_t   i;
    json_t  *v;

    if (!json_is_array(list)
        || json_array_size(list) > NGX_TELECLINIC_WS_URLS)
    {
        return NGX_ERROR;
    }

    json_array_foreach(list, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > NGX_TELECLINIC_WS_URL_MAX)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* call and appointment ids are 16 hex digits */

static ngx_int_t
ngx_teleclinic_ws_msg_id(json_t *root, const char *key, uint64_t *id)
{
    json_t  *v;

    v = json_object_get(root, key);

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    return ngx_teleclinic_appt_id_parse((u_char *) json_string_value(v),
                                        json_string_length(v), id);
}
