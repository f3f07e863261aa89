
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the token verifier of ngx_teleclinic_token.c.
 *
 * Each input is tried twice.  As a token: the verifier must refuse it
 * unless it is one that the issuer made (the seeds hold a few), and what
 * it accepts must be what the issuer makes of the same parts, byte for
 * byte.  As the parts of a token
 * (kind, expiry, subject, secret): the issued token must verify to the
 * same parts, and a token altered at a place the input picks, cut short,
 * or checked with another secret, must be refused: a token has one
 * spelling.  A patient's token that names an appointment names it in
 * one way: the subject made again from its id and version is the same.
 *
 * ngx_encode_base64url() and ngx_decode_base64url() come from nginx's
 * own ngx_string.c, which the Makefile compiles from Debian's source.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic_token.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }


/* the seeds' tokens are issued with this secret, at this time */
#define FUZZ_SECRET  "test-secret-0123456789"
#define FUZZ_NOW     1767225600                /* 2026-01-01T00:00:00Z */


static void fuzz_verify(ngx_str_t *secret, u_char *data, size_t size);
static void fuzz_issue(const uint8_t *data, size_t size);
static ngx_int_t fuzz_roundtrip(ngx_str_t *secret, ngx_uint_t kind,
    ngx_str_t *subject, time_t expires, ngx_str_t *tampered);
static void fuzz_same(ngx_teleclinic_token_t *t, ngx_uint_t kind,
    ngx_str_t *subject, time_t expires);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *buf;
    ngx_str_t   secret;

    buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }

    ngx_memcpy(buf, data, size);

    secret.data = (u_char *) FUZZ_SECRET;
    secret.len = sizeof(FUZZ_SECRET) - 1;

    fuzz_verify(&secret, buf, size);

    free(buf);

    fuzz_issue(data, size);

    return 0;
}


static void
fuzz_verify(ngx_str_t *secret, u_char *data, size_t size)
{
    u_char                  out[NGX_TELECLINIC_TOKEN_MAX], *end;
    u_char                  subj[NGX_TELECLINIC_APPT_SUBJECT];
    uint32_t                version;
    uint64_t                id;
    ngx_int_t               rc;
    ngx_str_t               token, subject;
    ngx_teleclinic_token_t  t;

    token.data = data;
    token.len = size;

    rc = ngx_teleclinic_token_verify(secret, &token, FUZZ_NOW, &t);

    if (rc == NGX_ERROR) {
        return;
    }

    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);
    fuzz_assert(size <= NGX_TELECLINIC_TOKEN_MAX);
    fuzz_assert(rc == (t.expires < FUZZ_NOW ? NGX_DECLINED : NGX_OK));
    fuzz_assert(t.subject.data == t.buf);
    fuzz_assert(t.subject.len >= 1
                && t.subject.len <= NGX_TELECLINIC_SUBJECT_MAX);

    /* what verified is what the issuer makes of the same parts */
    fuzz_assert(fuzz_roundtrip(secret, t.kind, &t.subject, t.expires, NULL)
                == rc);

    /*
     * and it is spelt as the issuer spells it: no padding, nothing after
     * it, no bits set past the last byte in a part's last character
     */

    end = ngx_teleclinic_token_issue(secret, t.kind, &t.subject, t.expires,
                                     out);

    fuzz_assert((size_t) (end - out) == size);
    fuzz_assert(ngx_memcmp(out, data, size) == 0);

    /* a patient's subject, appointment and version, has one spelling */

    if (ngx_teleclinic_token_appt(&t, &id, &version) == NGX_OK) {
        ngx_teleclinic_token_appt_subject(id, version, subj, &subject);

        fuzz_assert(subject.len == t.subject.len);
        fuzz_assert(ngx_memcmp(subject.data, t.subject.data, subject.len)
                    == 0);
    }
}


/*
 * kind (1 byte), expiry (8 bytes, big-endian), subject length (1 byte),
 * subject, where to alter the token (2 bytes), then the secret
 */

static void
fuzz_issue(const uint8_t *data, size_t size)
{
    u_char      alter[2];
    size_t      n;
    uint64_t    exp;
    ngx_str_t   subject, secret, tampered;
    ngx_uint_t  i, kind;

    if (size < 11) {
        return;
    }

    kind = data[0];
    exp = 0;

    for (i = 0; i < 8; i++) {
        exp = (exp << 8) | data[1 + i];
    }

    n = 1 + data[9] % NGX_TELECLINIC_SUBJECT_MAX;
    data += 10;
    size -= 10;

    if (n > size) {
        n = size;
    }

    subject.data = (u_char *) data;
    subject.len = n;
    data += n;
    size -= n;

    alter[0] = size > 0 ? data[0] : 0;
    alter[1] = size > 1 ? data[1] : '.';

    if (size > 2) {
        secret.data = (u_char *) data + 2;
        secret.len = size - 2;

    } else {
        secret.data = (u_char *) FUZZ_SECRET;
        secret.len = sizeof(FUZZ_SECRET) - 1;
    }

    tampered.data = alter;
    tampered.len = 2;

    (void) fuzz_roundtrip(&secret, kind, &subject, (time_t) exp, &tampered);
}


/*
 * Issues a token for the parts, checks that it verifies to them, and
 * returns what the verifier said.  With tampered, the token is also
 * altered at tampered->data[0] to tampered->data[1], cut to
 * tampered->data[0] characters, and checked with a secret one byte
 * longer.
 */

static ngx_int_t
fuzz_roundtrip(ngx_str_t *secret, ngx_uint_t kind, ngx_str_t *subject,
    time_t expires, ngx_str_t *tampered)
{
    u_char                  *out, *end, *other, save;
    size_t                   len, pos;
    uint32_t                 version;
    uint64_t                 id;
    ngx_int_t                rc;
    ngx_str_t                token, secret2;
    ngx_teleclinic_token_t   t;

    /* exactly the advertised maximum: ASan sees a longer write */
    out = malloc(NGX_TELECLINIC_TOKEN_MAX);
    fuzz_assert(out != NULL);

    end = ngx_teleclinic_token_issue(secret, kind, subject, expires, out);
    fuzz_assert(end != NULL);
    len = end - out;

    fuzz_assert(len <= NGX_TELECLINIC_TOKEN_MAX);
    fuzz_assert(memchr(out, '.', len) != NULL);

    token.data = out;
    token.len = len;

    rc = ngx_teleclinic_token_verify(secret, &token, FUZZ_NOW, &t);

    fuzz_assert(rc == (expires < FUZZ_NOW ? NGX_DECLINED : NGX_OK));
    fuzz_same(&t, kind, subject, expires);

    /* 8 bytes of id, then a version of 4 bytes other than 0 */

    if (kind == NGX_TELECLINIC_TOKEN_PATIENT
        && (subject->len == 8
            || (subject->len == 12
                && (subject->data[8] | subject->data[9] | subject->data[10]
                    | subject->data[11]) != 0)))
    {
        fuzz_assert(ngx_teleclinic_token_appt(&t, &id, &version) == NGX_OK);

    } else {
        fuzz_assert(ngx_teleclinic_token_appt(&t, &id, &version)
                    == NGX_ERROR);
    }

    if (tampered == NULL) {
        free(out);
        return rc;
    }

    /* one character changed: refused */

    pos = tampered->data[0] % len;
    save = out[pos];

    if (save != tampered->data[1]) {
        out[pos] = tampered->data[1];

        fuzz_assert(ngx_teleclinic_token_verify(secret, &token, FUZZ_NOW, &t)
                    == NGX_ERROR);

        out[pos] = save;
    }

    /* cut short: refused */

    token.len = tampered->data[0] % len;

    fuzz_assert(ngx_teleclinic_token_verify(secret, &token, FUZZ_NOW, &t)
                == NGX_ERROR);

    token.len = len;

    /*
     * another secret: refused; the byte added is not NUL, as HMAC pads
     * a short key with zeros and so takes "k" and "k\0" for one key
     */

    other = malloc(secret->len + 1);
    fuzz_assert(other != NULL);

    ngx_memcpy(other, secret->data, secret->len);
    other[secret->len] = tampered->data[1] | 1;
    secret2.data = other;
    secret2.len = secret->len + 1;

    fuzz_assert(ngx_teleclinic_token_verify(&secret2, &token, FUZZ_NOW, &t)
                == NGX_ERROR);

    free(other);
    free(out);

    return rc;
}


static void
fuzz_same(ngx_teleclinic_token_t *t, ngx_uint_t kind, ngx_str_t *subject,
    time_t expires)
{
    fuzz_assert(t->kind == (kind & 0xff));
    fuzz_assert(t->expires == expires);
    fuzz_assert(t->subject.len == subject->len);
    fuzz_assert(ngx_memcmp(t->subject.data, subject->data, subject->len)
                == 0);
}
