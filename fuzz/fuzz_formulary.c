
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the formulary of ngx_teleclinic_formulary.c: the
 * search's q comes from any client with a doctor's token, and the file
 * from whoever edits it.  An input is a query string, optionally followed
 * by a NUL and a formulary document.  The query string is read as
 * GET /api/v1/formulary reads it and searched in a small formulary made
 * once (accented Latin, Cyrillic, Chinese); its first bytes are also
 * searched for as they are, unchecked.  A document that parses is
 * searched too, and each of its drugs and exams found again by its id.
 *
 * The pool and the string functions come from nginx's own sources, as
 * for fuzz_journal.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_formulary.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }


static void fuzz_search(ngx_teleclinic_formulary_t *f, ngx_str_t *q);
static void fuzz_document(u_char *text, size_t len, ngx_str_t *q);


/* log_level 0: nothing is ever logged */
static ngx_log_t                    fuzz_log;
static ngx_teleclinic_formulary_t   fuzz_formulary;
static ngx_uint_t                   fuzz_ready;

static char  fuzz_seed[] =
    "{\"drugs\": ["
    "{\"id\": \"amoxicillin-500\", \"name\": \"Amoxicillin\","
    " \"names\": {\"zh\": \"\xe9\x98\xbf\xe8\x8e\xab\xe8\xa5\xbf\xe6\x9e\x97\","
    " \"ru\": \"\xd0\x90\xd0\xbc\xd0\xbe\xd0\xba\xd1\x81\"},"
    " \"form\": \"capsule\", \"strength\": \"500 mg\","
    " \"code\": \"J01CA04\", \"system\": \"http://www.whocc.no/atc\"},"
    "{\"id\": \"co-amoxiclav\", \"name\": \"Amoxicillin + clavulanic acid\","
    " \"form\": \"tablet\", \"strength\": \"500 mg + 125 mg\"},"
    "{\"id\": \"folic-acid\", \"name\": \"Folic acid\","
    " \"names\": {\"es\": \"\xc3\x81\x63ido f\xc3\xb3lico\"},"
    " \"form\": \"tablet\", \"strength\": \"5 mg\"},"
    "{\"id\": \"paracetamol\", \"name\": \"Paracetamol\","
    " \"form\": \"tablet\", \"strength\": \"500 mg\"}],"
    " \"exams\": [{\"id\": \"cbc\", \"name\": \"Complete blood count\","
    " \"code\": \"58410-2\", \"system\": \"http://loinc.org\"}]}";


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                          *args, *nul;
    u_char                           buf[NGX_TELECLINIC_QUERY_MAX];
    size_t                           n;
    ngx_str_t                        q, raw;
    ngx_pool_t                      *pool;
    ngx_teleclinic_error_t           err;
    ngx_teleclinic_formulary_err_t   ferr;

    if (!fuzz_ready) {
        pool = ngx_create_pool(4096, &fuzz_log);
        fuzz_assert(pool != NULL);

        fuzz_assert(ngx_teleclinic_formulary_parse(&fuzz_formulary, pool,
                                                   (u_char *) fuzz_seed,
                                                   sizeof(fuzz_seed) - 1,
                                                   &ferr)
                    == NGX_OK);
        fuzz_assert(fuzz_formulary.ndrugs == 4);
        fuzz_ready = 1;
    }

    nul = memchr(data, '\0', size);
    n = nul ? (size_t) (nul - data) : size;

    /* a copy of its own size, so that a read past it is caught */
    args = malloc(n ? n : 1);
    fuzz_assert(args != NULL);
    ngx_memcpy(args, data, n);

    ngx_str_null(&q);

    if (ngx_teleclinic_formulary_query(args, n, buf, &q, &err) == NGX_OK) {
        fuzz_assert(q.len <= NGX_TELECLINIC_QUERY_MAX);
        fuzz_assert(q.len == 0 || (q.data >= buf
                                   && q.data + q.len
                                      <= buf + NGX_TELECLINIC_QUERY_MAX));
        fuzz_assert(q.len == 0 || (q.data[0] != ' '
                                   && q.data[q.len - 1] != ' '));
        fuzz_search(&fuzz_formulary, &q);

    } else {
        fuzz_assert(err.status == 422);
        fuzz_assert(err.code != NULL && err.message != NULL);
        ngx_str_null(&q);
    }

    /* search's own guard: bytes that were never checked */
    raw.data = args;
    raw.len = n;
    fuzz_search(&fuzz_formulary, &raw);

    if (nul) {
        fuzz_document(nul + 1, size - n - 1, &q);
    }

    free(args);

    return 0;
}


static void
fuzz_search(ngx_teleclinic_formulary_t *f, ngx_str_t *q)
{
    ngx_uint_t              i, j, n;
    ngx_teleclinic_drug_t  *hits[NGX_TELECLINIC_FORMULARY_HITS];

    n = ngx_teleclinic_formulary_search(f, q, hits,
                                        NGX_TELECLINIC_FORMULARY_HITS);

    fuzz_assert(n <= NGX_TELECLINIC_FORMULARY_HITS && n <= f->ndrugs);

    if (q->len == 0) {
        fuzz_assert(n == ngx_min(f->ndrugs, NGX_TELECLINIC_FORMULARY_HITS));
    }

    for (i = 0; i < n; i++) {
        fuzz_assert(hits[i] >= f->drugs && hits[i] < f->drugs + f->ndrugs);

        for (j = 0; j < i; j++) {
            fuzz_assert(hits[i] != hits[j]);
        }
    }
}


static void
fuzz_document(u_char *data, size_t len, ngx_str_t *q)
{
    u_char                          *text;
    ngx_uint_t                       i;
    ngx_pool_t                      *pool;
    ngx_teleclinic_formulary_t       f;
    ngx_teleclinic_formulary_err_t   err;

    pool = ngx_create_pool(4096, &fuzz_log);
    fuzz_assert(pool != NULL);

    text = malloc(len ? len : 1);
    fuzz_assert(text != NULL);
    ngx_memcpy(text, data, len);

    if (ngx_teleclinic_formulary_parse(&f, pool, text, len, &err) != NGX_OK) {
        fuzz_assert(err.message != NULL);
        goto done;
    }

    /* the parse copied what it keeps: the text may go */
    ngx_memset(text, 0xa5, len);

    for (i = 0; i < f.ndrugs; i++) {
        fuzz_assert(ngx_teleclinic_drug_find(&f, &f.drugs[i].id)
                    == &f.drugs[i]);
        fuzz_assert(f.drugs[i].nnames >= 1 && f.drugs[i].form.len > 0
                    && f.drugs[i].strength.len > 0);
        fuzz_assert((f.drugs[i].code.len == 0)
                    == (f.drugs[i].system.len == 0));
    }

    for (i = 0; i < f.nexams; i++) {
        fuzz_assert(ngx_teleclinic_exam_find(&f, &f.exams[i].id)
                    == &f.exams[i]);
    }

    fuzz_search(&f, q);

done:

    free(text);
    ngx_destroy_pool(pool);
}
