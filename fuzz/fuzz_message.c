
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the WebSocket protocol's message parser
 * (ngx_teleclinic_message.c): any text a client sends is parsed, and
 * what the parser accepts is checked against what the protocol promises
 * the waiting room: a known type with every field it needs, of the right
 * kind.  A refusal always names a code and a message.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_message.h"
#include "ngx_teleclinic_token.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_int_t                 rc;
    ngx_teleclinic_ws_msg_t   msg;

    rc = ngx_teleclinic_ws_msg_parse(data, size, &msg);

    if (rc != NGX_OK) {
        fuzz_assert(rc == NGX_ERROR);
        fuzz_assert(msg.code != NULL && msg.message != NULL);
        fuzz_assert(msg.type <= NGX_TELECLINIC_WS_SNAPSHOT_CONSENT);

        /* a type is named only for a message that is a v1 object */
        fuzz_assert(msg.type == 0 || json_is_object(msg.root));

        ngx_teleclinic_ws_msg_free(&msg);
        fuzz_assert(msg.root == NULL);
        return 0;
    }

    fuzz_assert(msg.code == NULL);
    fuzz_assert(json_is_object(msg.root));
    fuzz_assert(msg.type >= NGX_TELECLINIC_WS_HELLO
                && msg.type <= NGX_TELECLINIC_WS_SNAPSHOT_CONSENT);
    fuzz_assert(msg.id == NULL
                || json_is_string(msg.id) || json_is_integer(msg.id));

    switch (msg.type) {

    case NGX_TELECLINIC_WS_HELLO:
        fuzz_assert(msg.token.len > 0
                    && msg.token.len <= NGX_TELECLINIC_TOKEN_MAX);
        fuzz_assert(msg.token.data != NULL);
        break;

    case NGX_TELECLINIC_WS_SIGNAL:
        fuzz_assert(json_is_object(msg.data));
        break;

    case NGX_TELECLINIC_WS_MEDIA:
        fuzz_assert(msg.media == NGX_TELECLINIC_MEDIA_CONNECTED
                    || msg.media == NGX_TELECLINIC_MEDIA_FAILED);
        break;

    case NGX_TELECLINIC_WS_SNAPSHOT_CONSENT:
        /* a request id JavaScript holds exactly, and a boolean answer */
        fuzz_assert(msg.request >= 1
                    && msg.request <= (((ngx_uint_t) 1) << 53) - 1);
        fuzz_assert(json_is_integer(json_object_get(msg.root, "request")));
        fuzz_assert(msg.granted == 0 || msg.granted == 1);
        fuzz_assert(json_is_boolean(json_object_get(msg.root, "granted")));
        fuzz_assert(msg.granted
                    == (ngx_uint_t) json_is_true(json_object_get(msg.root,
                                                               "granted")));
        break;

    case NGX_TELECLINIC_WS_CALL:
    case NGX_TELECLINIC_WS_SKIP:
    case NGX_TELECLINIC_WS_NOSHOW:
        /* the id came from 16 hex digits, in the field */
        fuzz_assert(json_is_string(json_object_get(msg.root,
                                                   "appointment")));
        fuzz_assert(json_string_length(json_object_get(msg.root,
                                                       "appointment"))
                    == 16);
        break;
    }

    ngx_teleclinic_ws_msg_free(&msg);

    return 0;
}
