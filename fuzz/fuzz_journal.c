
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the journal record decoder of
 * ngx_teleclinic_journal.c: what replay reads back after a crash may be
 * any bytes.  Each input is decoded as a line, and again behind a
 * correct checksum, so that the fuzzer reaches the JSON part.  A record
 * that decodes must encode and decode again to the same event, both in
 * plain text and with the patient's fields sealed under a data key.
 *
 * The pool, the CRC32 table and the string functions come from nginx's
 * own sources, which the Makefile compiles from Debian's source package;
 * the Makefile links with --gc-sections, so the parts of the journal that
 * need a running nginx (files, the zone, thread pools) are left out.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_journal.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }


static void fuzz_decode(u_char *line, size_t len, ngx_pool_t *pool);
static void fuzz_same(ngx_teleclinic_event_t *a, ngx_teleclinic_event_t *b);
static void fuzz_same_str(ngx_str_t *a, ngx_str_t *b);


/* log_level 0: nothing is ever logged */
static ngx_log_t              fuzz_log;
static ngx_teleclinic_keys_t  fuzz_keys;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char      *line;
    uint32_t     crc;
    ngx_pool_t  *pool;

    const char  *err;

    pool = ngx_create_pool(4096, &fuzz_log);
    fuzz_assert(pool != NULL);

    if (fuzz_keys.nkeys == 0) {
        fuzz_assert(ngx_teleclinic_key_parse((u_char *)
                        "000102030405060708090a0b0c0d0e0f"
                        "101112131415161718191a1b1c1d1e1f", 64,
                        &fuzz_keys.keys[0], &err) == NGX_OK);
        fuzz_keys.nkeys = 1;
    }

    /* as it is */

    line = malloc(size ? size : 1);
    fuzz_assert(line != NULL);

    ngx_memcpy(line, data, size);
    fuzz_decode(line, size, pool);
    free(line);

    /* behind its checksum: "crc32hex8 " */

    line = malloc(9 + size);
    fuzz_assert(line != NULL);

    ngx_crc32_init(crc);
    ngx_crc32_update(&crc, (u_char *) data, size);
    ngx_crc32_final(crc);

    snprintf((char *) line, 9, "%08x", crc);
    line[8] = ' ';
    ngx_memcpy(line + 9, data, size);

    fuzz_decode(line, 9 + size, pool);
    free(line);

    ngx_destroy_pool(pool);

    return 0;
}


static void
fuzz_decode(u_char *line, size_t len, ngx_pool_t *pool)
{
    u_char                  *buf;
    size_t                   size;
    ssize_t                  n;
    ngx_teleclinic_event_t   ev, ev2;

    /* a sealed field the fuzzer made up is refused, never opened */
    if (ngx_teleclinic_journal_decode(line, len, &ev, &fuzz_keys, pool)
        != NGX_OK)
    {
        return;
    }

    fuzz_assert(ev.op >= NGX_TELECLINIC_EV_BOOK
                && ev.op <= NGX_TELECLINIC_EV_LAST);

    /* JSON escapes a byte in at most 6, "\u001f", around a fixed frame */
    size = 6 * len + 4096;
    buf = malloc(size);
    fuzz_assert(buf != NULL);

    n = ngx_teleclinic_journal_encode(&ev, NULL, buf, size);

    fuzz_assert(n > 10 && (size_t) n <= size);
    fuzz_assert(buf[n - 1] == '\n');
    fuzz_assert(memchr(buf, '\n', n - 1) == NULL);

    fuzz_assert(ngx_teleclinic_journal_decode(buf, n - 1, &ev2, NULL, pool)
                == NGX_OK);

    fuzz_same(&ev, &ev2);

    /* sealed: base64 of the sealed bytes is at most twice a field's */
    n = ngx_teleclinic_journal_encode(&ev, &fuzz_keys, buf, size);

    if (n > 0) {
        fuzz_assert(buf[n - 1] == '\n');
        fuzz_assert(ngx_teleclinic_journal_decode(buf, n - 1, &ev2,
                                                  &fuzz_keys, pool)
                    == NGX_OK);
        fuzz_same(&ev, &ev2);

        /* without the key: refused as sealed, not read as damage */
        if (ev.op == NGX_TELECLINIC_EV_BOOK || ev.op == NGX_TELECLINIC_EV_APPT)
        {
            fuzz_assert(ngx_teleclinic_journal_decode(buf, n - 1, &ev2, NULL,
                                                      pool)
                        == NGX_ABORT);
        }
    }

    free(buf);
}


/* the fields that the record of each op carries */

static void
fuzz_same(ngx_teleclinic_event_t *a, ngx_teleclinic_event_t *b)
{
    fuzz_assert(a->op == b->op);
    fuzz_assert(a->seq == b->seq);
    fuzz_assert(a->at == b->at);

    switch (a->op) {

    case NGX_TELECLINIC_EV_BOOK:
    case NGX_TELECLINIC_EV_APPT:
        fuzz_same_str(&a->name, &b->name);
        fuzz_same_str(&a->phone, &b->phone);
        fuzz_same_str(&a->reason, &b->reason);

        if (a->op == NGX_TELECLINIC_EV_APPT) {
            fuzz_assert(a->status == b->status);
            fuzz_assert(a->created == b->created);
            fuzz_assert(a->arrived == b->arrived);
            fuzz_assert(a->visit_start == b->visit_start);
            fuzz_assert(a->visit_end == b->visit_end);
            fuzz_assert(a->version == b->version);
        }

        /* fall through */

    case NGX_TELECLINIC_EV_RESCHEDULE:
        fuzz_same_str(&a->doctor, &b->doctor);
        fuzz_assert(a->start == b->start);
        fuzz_assert(a->end == b->end);

        /* fall through */

    case NGX_TELECLINIC_EV_CANCEL:
    case NGX_TELECLINIC_EV_EXPIRE:
        fuzz_assert(a->id == b->id);
        break;

    case NGX_TELECLINIC_EV_STATUS:
        fuzz_assert(a->id == b->id);
        fuzz_assert(a->status == b->status);
        break;

    case NGX_TELECLINIC_EV_DIRECTORY:
        fuzz_same_str(&a->directory, &b->directory);
        fuzz_assert(ngx_memcmp(a->hash, b->hash, 32) == 0);
        break;

    case NGX_TELECLINIC_EV_MSG:
        fuzz_assert(a->id == b->id);
        fuzz_assert(a->kind == b->kind);
        fuzz_assert(a->due == b->due);

        /* fall through */

    case NGX_TELECLINIC_EV_SENT:
        fuzz_assert(a->msg == b->msg);
        break;

    case NGX_TELECLINIC_EV_ROOM:
        fuzz_same_str(&a->doctor, &b->doctor);
        fuzz_assert(a->visits == b->visits);
        fuzz_assert(a->average == b->average);
        break;

    case NGX_TELECLINIC_EV_CONSENT:
        /* ids and times only: nothing of it is sealed */
        fuzz_assert(a->id == b->id);
        fuzz_assert(a->at == b->at);
        fuzz_assert(a->created == b->created);
        fuzz_assert(a->request == b->request);
        fuzz_assert(a->request <= NGX_TELECLINIC_REQUEST_MAX);
        fuzz_assert(a->num[0] == b->num[0]);
        break;
    }
}


static void
fuzz_same_str(ngx_str_t *a, ngx_str_t *b)
{
    fuzz_assert(a->len == b->len);
    fuzz_assert(a->len == 0 || ngx_memcmp(a->data, b->data, a->len) == 0);
}
