
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_formulary.h"
#include "ngx_teleclinic_request.h"


#define NGX_TELECLINIC_TEXT_MAX      256
#define NGX_TELECLINIC_CODE_MAX      64
#define NGX_TELECLINIC_LANG_MAX      35

#define NGX_TELECLINIC_BAD_UTF8      0xffffffff

/* how a name matches a search */
#define NGX_TELECLINIC_MATCH_NONE    0
#define NGX_TELECLINIC_MATCH_WORD    1
#define NGX_TELECLINIC_MATCH_PREFIX  2


static ngx_int_t ngx_teleclinic_drug_parse(ngx_pool_t *pool, json_t *obj,
    ngx_teleclinic_drug_t *drug, const char **err);
static ngx_int_t ngx_teleclinic_exam_parse(ngx_pool_t *pool, json_t *obj,
    ngx_teleclinic_exam_t *exam, const char **err);
static ngx_int_t ngx_teleclinic_coding_parse(ngx_pool_t *pool, json_t *obj,
    ngx_str_t *code, ngx_str_t *system, const char **err);
static ngx_int_t ngx_teleclinic_names_parse(ngx_pool_t *pool, json_t *obj,
    ngx_str_t *name, ngx_teleclinic_name_t **names, ngx_uint_t *nnames,
    const char **err);
static ngx_int_t ngx_teleclinic_name_fold(ngx_pool_t *pool,
    ngx_teleclinic_name_t *name);
static ngx_int_t ngx_teleclinic_formulary_string(ngx_pool_t *pool,
    json_t *obj, const char *key, size_t max, ngx_str_t *value);
static ngx_int_t ngx_teleclinic_text_valid(u_char *p, size_t len);
static int ngx_libc_cdecl ngx_teleclinic_drug_cmp(const void *one,
    const void *two);
static ngx_uint_t ngx_teleclinic_name_match(ngx_teleclinic_name_t *name,
    ngx_str_t *q);
static ngx_int_t ngx_teleclinic_percent_decode(u_char *src, size_t len,
    u_char *dst, size_t *n);
static uint32_t ngx_teleclinic_utf8_decode(u_char **p, u_char *last);
static u_char *ngx_teleclinic_utf8_encode(u_char *p, uint32_t c);
static uint32_t ngx_teleclinic_lower(uint32_t c);
static ngx_uint_t ngx_teleclinic_is_word(uint32_t c);
static ngx_uint_t ngx_teleclinic_is_ideograph(uint32_t c);


ngx_int_t
ngx_teleclinic_formulary_parse(ngx_teleclinic_formulary_t *f,
    ngx_pool_t *pool, u_char *text, size_t len,
    ngx_teleclinic_formulary_err_t *err)
{
    size_t         i;
    json_t        *root, *drugs, *exams, *item;
    json_error_t   jerr;

    ngx_memzero(f, sizeof(ngx_teleclinic_formulary_t));

    err->list = NULL;
    err->item = 0;

    root = json_loadb((const char *) text, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        err->message = "the formulary is not valid JSON";
        return NGX_ERROR;
    }

    drugs = json_object_get(root, "drugs");
    exams = json_object_get(root, "exams");

    if (!json_is_array(drugs) || !json_is_array(exams)) {
        err->message = "the formulary needs the arrays \"drugs\" and "
                       "\"exams\"";
        goto failed;
    }

    f->drugs = ngx_pcalloc(pool, (json_array_size(drugs) + 1)
                                 * sizeof(ngx_teleclinic_drug_t));
    f->by_name = ngx_palloc(pool, (json_array_size(drugs) + 1)
                                  * sizeof(ngx_teleclinic_drug_t *));
    f->exams = ngx_pcalloc(pool, (json_array_size(exams) + 1)
                                 * sizeof(ngx_teleclinic_exam_t));

    if (f->drugs == NULL || f->by_name == NULL || f->exams == NULL) {
        err->message = "out of memory";
        goto failed;
    }

    err->list = "drugs";

    json_array_foreach(drugs, i, item) {
        err->item = i;

        if (ngx_teleclinic_drug_parse(pool, item, &f->drugs[i], &err->message)
            != NGX_OK)
        {
            goto failed;
        }

        if (ngx_teleclinic_drug_find(f, &f->drugs[i].id) != NULL) {
            err->message = "two drugs have the same \"id\"";
            goto failed;
        }

        f->drugs[i].order = i;
        f->by_name[i] = &f->drugs[i];
        f->ndrugs++;
    }

    err->list = "exams";

    json_array_foreach(exams, i, item) {
        err->item = i;

        if (ngx_teleclinic_exam_parse(pool, item, &f->exams[i], &err->message)
            != NGX_OK)
        {
            goto failed;
        }

        if (ngx_teleclinic_exam_find(f, &f->exams[i].id) != NULL) {
            err->message = "two exams have the same \"id\"";
            goto failed;
        }

        f->nexams++;
    }

    json_decref(root);

    /* sorted once here, so that a search is one pass in answer order */
    ngx_qsort(f->by_name, f->ndrugs, sizeof(ngx_teleclinic_drug_t *),
              ngx_teleclinic_drug_cmp);

    err->list = NULL;

    return NGX_OK;

failed:

    json_decref(root);

    return NGX_ERROR;
}


static ngx_int_t
ngx_teleclinic_drug_parse(ngx_pool_t *pool, json_t *obj,
    ngx_teleclinic_drug_t *drug, const char **err)
{
    if (!json_is_object(obj)
        || ngx_teleclinic_formulary_string(pool, obj, "id",
                                           NGX_TELECLINIC_ID_MAX, &drug->id)
           != NGX_OK
        || ngx_teleclinic_id_valid(drug->id.data, drug->id.len) != NGX_OK)
    {
        *err = "a drug needs an \"id\" of 1 to 32 of a-z, 0-9, -";
        return NGX_ERROR;
    }

    if (ngx_teleclinic_formulary_string(pool, obj, "name",
                                        NGX_TELECLINIC_TEXT_MAX, &drug->name)
        != NGX_OK
        || ngx_teleclinic_formulary_string(pool, obj, "form",
                                           NGX_TELECLINIC_TEXT_MAX,
                                           &drug->form)
           != NGX_OK
        || ngx_teleclinic_formulary_string(pool, obj, "strength",
                                           NGX_TELECLINIC_TEXT_MAX,
                                           &drug->strength)
           != NGX_OK)
    {
        *err = "a drug needs a \"name\", a \"form\" and a \"strength\": "
               "strings of 1 to 256 bytes without control characters";
        return NGX_ERROR;
    }

    if (ngx_teleclinic_coding_parse(pool, obj, &drug->code, &drug->system,
                                    err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_names_parse(pool, obj, &drug->name, &drug->names,
                                      &drug->nnames, err);
}


static ngx_int_t
ngx_teleclinic_exam_parse(ngx_pool_t *pool, json_t *obj,
    ngx_teleclinic_exam_t *exam, const char **err)
{
    if (!json_is_object(obj)
        || ngx_teleclinic_formulary_string(pool, obj, "id",
                                           NGX_TELECLINIC_ID_MAX, &exam->id)
           != NGX_OK
        || ngx_teleclinic_id_valid(exam->id.data, exam->id.len) != NGX_OK)
    {
        *err = "an exam needs an \"id\" of 1 to 32 of a-z, 0-9, -";
        return NGX_ERROR;
    }

    if (ngx_teleclinic_formulary_string(pool, obj, "name",
                                        NGX_TELECLINIC_TEXT_MAX, &exam->name)
        != NGX_OK)
    {
        *err = "an exam needs a \"name\": a string of 1 to 256 bytes "
               "without control characters";
        return NGX_ERROR;
    }

    if (ngx_teleclinic_coding_parse(pool, obj, &exam->code, &exam->system,
                                    err)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_teleclinic_names_parse(pool, obj, &exam->name, &exam->names,
                                      &exam->nnames, err);
}


/* "code" and "system" go together: a code means nothing without it */

static ngx_int_t
ngx_teleclinic_coding_parse(ngx_pool_t *pool, json_t *obj, ngx_str_t *code,
    ngx_str_t *system, const char **err)
{
    ngx_str_null(code);
    ngx_str_null(system);

    if (json_object_get(obj, "code") == NULL
        && json_object_get(obj, "system") == NULL)
    {
        return NGX_OK;
    }

    if (ngx_teleclinic_formulary_string(pool, obj, "code",
                                        NGX_TELECLINIC_CODE_MAX, code)
        != NGX_OK
        || code->data[0] == ' ' || code->data[code->len - 1] == ' ')
    {
        *err = "a \"code\" is 1 to 64 bytes without control characters "
               "or spaces around it, and has a \"system\"";
        return NGX_ERROR;
    }

    if (ngx_teleclinic_formulary_string(pool, obj, "system",
                                        NGX_TELECLINIC_TEXT_MAX, system)
        != NGX_OK
        || (ngx_strncmp(system->data, "http://", 7) != 0
            && ngx_strncmp(system->data, "https://", 8) != 0
            && ngx_strncmp(system->data, "urn:", 4) != 0)
        || ngx_strlchr(system->data, system->data + system->len, ' '))
    {
        *err = "a \"system\" is the URI of the code's system, such as "
               "\"http://www.whocc.no/atc\", and goes with a \"code\"";
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the name, then the translations of "names": {"zh": "..."} */

static ngx_int_t
ngx_teleclinic_names_parse(ngx_pool_t *pool, json_t *obj, ngx_str_t *name,
    ngx_teleclinic_name_t **names, ngx_uint_t *nnames, const char **err)
{
    size_t                  i;
    json_t                 *list, *v;
    const char             *lang;
    ngx_teleclinic_name_t  *n;

    list = json_object_get(obj, "names");

    if (list != NULL && !json_is_object(list)) {
        *err = "\"names\" must be an object of translations, "
               "{\"zh\": \"...\"}";
        return NGX_ERROR;
    }

    n = ngx_pcalloc(pool, (1 + (list ? json_object_size(list) : 0))
                          * sizeof(ngx_teleclinic_name_t));
    if (n == NULL) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    *names = n;
    *nnames = 1;

    n->text = *name;

    if (ngx_teleclinic_name_fold(pool, n) != NGX_OK) {
        *err = "out of memory";
        return NGX_ERROR;
    }

    if (list == NULL) {
        return NGX_OK;
    }

    json_object_foreach(list, lang, v) {
        n = &(*names)[*nnames];

        n->lang.data = (u_char *) lang;
        n->lang.len = ngx_strlen(lang);

        for (i = 0; i < n->lang.len; i++) {
            if (!((lang[i] >= 'a' && lang[i] <= 'z')
                  || (lang[i] >= 'A' && lang[i] <= 'Z')
                  || (lang[i] >= '0' && lang[i] <= '9')
                  || (lang[i] == '-' && i > 0)))
            {
                break;
            }
        }

        if (n->lang.len == 0 || n->lang.len > NGX_TELECLINIC_LANG_MAX
            || i != n->lang.len)
        {
            *err = "a translation's key is a language tag such as \"zh\"";
            return NGX_ERROR;
        }

        if (ngx_teleclinic_formulary_string(pool, list, lang,
                                            NGX_TELECLINIC_TEXT_MAX, &n->text)
            != NGX_OK)
        {
            *err = "a translated name is a string of 1 to 256 bytes without "
                   "control characters";
            return NGX_ERROR;
        }

        n->lang.data = ngx_pnalloc(pool, n->lang.len);
        if (n->lang.data == NULL) {
            *err = "out of memory";
            return NGX_ERROR;
        }

        ngx_memcpy(n->lang.data, lang, n->lang.len);

        if (ngx_teleclinic_name_fold(pool, n) != NGX_OK) {
            *err = "out of memory";
            return NGX_ERROR;
        }

        (*nnames)++;
    }

    return NGX_OK;
}


/*
 * The lower-case copy a search compares with, made once here; a name
 * with an ideograph or kana in it is matched at any character
 */

static ngx_int_t
ngx_teleclinic_name_fold(ngx_pool_t *pool, ngx_teleclinic_name_t *name)
{
    u_char    *p, *last, *d;
    uint32_t   c;

    /* lower case is never longer in UTF-8 than the letter it folds */
    name->folded.data = ngx_pnalloc(pool, name->text.len);
    if (name->folded.data == NULL) {
        return NGX_ERROR;
    }

    p = name->text.data;
    last = p + name->text.len;
    d = name->folded.data;

    while (p < last) {
        c = ngx_teleclinic_utf8_decode(&p, last);

        if (ngx_teleclinic_is_ideograph(c)) {
            name->anywhere = 1;
        }

        d = ngx_teleclinic_utf8_encode(d, ngx_teleclinic_lower(c));
    }

    name->folded.len = d - name->folded.data;

    return NGX_OK;
}


/* a string of 1 to max bytes without control characters, copied */

static ngx_int_t
ngx_teleclinic_formulary_string(ngx_pool_t *pool, json_t *obj,
    const char *key, size_t max, ngx_str_t *value)
{
    size_t   len;
    json_t  *v;

    v = json_object_get(obj, key);

    if (!json_is_string(v)) {
        return NGX_ERROR;
    }

    len = json_string_length(v);

    if (len == 0 || len > max
        || ngx_teleclinic_text_valid((u_char *) json_string_value(v), len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    value->data = ngx_pnalloc(pool, len);
    if (value->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(value->data, json_string_value(v), len);
    value->len = len;

    return NGX_OK;
}


/* valid UTF-8 without C0, DEL or C1 control characters (NUL included) */

static ngx_int_t
ngx_teleclinic_text_valid(u_char *p, size_t len)
{
    u_char    *last;
    uint32_t   c;

    last = p + len;

    while (p < last) {
        c = ngx_teleclinic_utf8_decode(&p, last);

        if (c == NGX_TELECLINIC_BAD_UTF8
            || c < 0x20 || (c >= 0x7f && c <= 0x9f))
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* by name in lower case, then as written, then as in the file */

static int ngx_libc_cdecl
ngx_teleclinic_drug_cmp(const void *one, const void *two)
{
    ngx_int_t               rc;
    ngx_teleclinic_drug_t  *a, *b;

    a = *(ngx_teleclinic_drug_t **) one;
    b = *(ngx_teleclinic_drug_t **) two;

    rc = ngx_memn2cmp(a->names[0].folded.data, b->names[0].folded.data,
                      a->names[0].folded.len, b->names[0].folded.len);

    if (rc == 0) {
        rc = ngx_memn2cmp(a->name.data, b->name.data, a->name.len,
                          b->name.len);
    }

    if (rc == 0) {
        rc = (a->order > b->order) - (a->order < b->order);
    }

    return (int) rc;
}


ngx_teleclinic_drug_t *
ngx_teleclinic_drug_find(ngx_teleclinic_formulary_t *f, ngx_str_t *id)
{
    ngx_uint_t  i;

    for (i = 0; i < f->ndrugs; i++) {
        if (f->drugs[i].id.len == id->len
            && ngx_strncmp(f->drugs[i].id.data, id->data, id->len) == 0)
        {
            return &f->drugs[i];
        }
    }

    return NULL;
}


ngx_teleclinic_exam_t *
ngx_teleclinic_exam_find(ngx_teleclinic_formulary_t *f, ngx_str_t *id)
{
    ngx_uint_t  i;

    for (i = 0; i < f->nexams; i++) {
        if (f->exams[i].id.len == id->len
            && ngx_strncmp(f->exams[i].id.data, id->data, id->len) == 0)
        {
            return &f->exams[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_teleclinic_formulary_query(u_char *args, size_t len, u_char *buf,
    ngx_str_t *q, ngx_teleclinic_error_t *err)
{
    u_char     *p, *last;
    size_t      n;
    uint32_t    c;
    ngx_str_t   arg;

    q->data = buf;
    q->len = 0;

    if (ngx_teleclinic_arg(args, len, "q", &arg) != NGX_OK) {
        return NGX_OK;
    }

    err->status = 422;
    err->code = "invalid_field";
    err->field = "q";

    /* "%xx" is the longest spelling of a byte */
    if (arg.len > 3 * NGX_TELECLINIC_QUERY_MAX) {
        err->message = "q is longer than 100 bytes";
        return NGX_ERROR;
    }

    switch (ngx_teleclinic_percent_decode(arg.data, arg.len, buf, &n)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        err->message = "q is longer than 100 bytes";
        return NGX_ERROR;

    default: /* NGX_ERROR */
        err->message = "q has a malformed percent escape";
        return NGX_ERROR;
    }

    p = buf;
    last = buf + n;

    while (p < last) {
        c = ngx_teleclinic_utf8_decode(&p, last);

        if (c == NGX_TELECLINIC_BAD_UTF8) {
            err->message = "q is not UTF-8";
            return NGX_ERROR;
        }

        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
            err->message = "q contains control characters";
            return NGX_ERROR;
        }
    }

    p = buf;

    while (p < last && *p == ' ') {
        p++;
    }

    while (last > p && last[-1] == ' ') {
        last--;
    }

    q->data = p;
    q->len = last - p;

    return NGX_OK;
}


/*
 * NGX_DECLINED when the text is longer than NGX_TELECLINIC_QUERY_MAX
 * bytes, NGX_ERROR for a '%' without two hex digits
 */

static ngx_int_t
ngx_teleclinic_percent_decode(u_char *src, size_t len, u_char *dst,
    size_t *n)
{
    u_char   c, h, l;
    size_t   i;

    *n = 0;

    for (i = 0; i < len; i++) {
        c = src[i];

        if (c == '%') {
            if (i + 2 >= len) {
                return NGX_ERROR;
            }

            h = (u_char) (src[i + 1] | 0x20);
            l = (u_char) (src[i + 2] | 0x20);

            if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f'))
                || !((l >= '0' && l <= '9') || (l >= 'a' && l <= 'f')))
            {
                return NGX_ERROR;
            }

            c = (u_char) (((h >= 'a' ? h - 'a' + 10 : h - '0') << 4)
                          | (l >= 'a' ? l - 'a' + 10 : l - '0'));
            i += 2;

        } else if (c == '+') {
            c = ' ';
        }

        if (*n == NGX_TELECLINIC_QUERY_MAX) {
            return NGX_DECLINED;
        }

        dst[(*n)++] = c;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_teleclinic_formulary_search(ngx_teleclinic_formulary_t *f, ngx_str_t *q,
    ngx_teleclinic_drug_t **hits, ngx_uint_t max)
{
    u_char                  folded[NGX_TELECLINIC_QUERY_MAX], *p, *last, *d;
    uint32_t                c;
    ngx_str_t               fq;
    ngx_uint_t              i, j, m, best, nprefix, nword;
    ngx_teleclinic_drug_t  *drug, *word[NGX_TELECLINIC_FORMULARY_HITS];

    if (max > NGX_TELECLINIC_FORMULARY_HITS) {
        max = NGX_TELECLINIC_FORMULARY_HITS;
    }

    if (q->len > NGX_TELECLINIC_QUERY_MAX) {
        return 0;
    }

    d = folded;

    if (q->len) {
        p = q->data;
        last = p + q->len;

        while (p < last) {
            c = ngx_teleclinic_utf8_decode(&p, last);

            if (c == NGX_TELECLINIC_BAD_UTF8) {
                return 0;
            }

            d = ngx_teleclinic_utf8_encode(d, ngx_teleclinic_lower(c));
        }
    }

    fq.data = folded;
    fq.len = d - folded;

    nprefix = 0;
    nword = 0;

    for (i = 0; i < f->ndrugs && nprefix < max; i++) {
        drug = f->by_name[i];
        best = NGX_TELECLINIC_MATCH_NONE;

        for (j = 0; j < drug->nnames; j++) {
            m = ngx_teleclinic_name_match(&drug->names[j], &fq);

            if (m > best) {
                best = m;
            }

            if (best == NGX_TELECLINIC_MATCH_PREFIX) {
                break;
            }
        }

        if (best == NGX_TELECLINIC_MATCH_PREFIX) {
            hits[nprefix++] = drug;

        } else if (best == NGX_TELECLINIC_MATCH_WORD && nword < max) {
            word[nword++] = drug;
        }
    }

    for (i = 0; i < nword && nprefix < max; i++) {
        hits[nprefix++] = word[i];
    }

    return nprefix;
}


/*
 * A word starts at a letter or digit after anything else, and at every
 * ideograph; in a name with ideographs, q may start at any character.
 */

static ngx_uint_t
ngx_teleclinic_name_match(ngx_teleclinic_name_t *name, ngx_str_t *q)
{
    u_char      *p, *last, *start;
    uint32_t     c, prev;
    ngx_uint_t   word, was_word;

    if (name->folded.len < q->len) {
        return NGX_TELECLINIC_MATCH_NONE;
    }

    if (ngx_memcmp(name->folded.data, q->data, q->len) == 0) {
        return NGX_TELECLINIC_MATCH_PREFIX;
    }

    p = name->folded.data;
    last = p + name->folded.len;
    prev = ' ';
    was_word = 0;

    while ((size_t) (last - p) >= q->len) {
        start = p;
        c = ngx_teleclinic_utf8_decode(&p, last);
        word = ngx_teleclinic_is_word(c);

        if (start != name->folded.data
            && (name->anywhere
                || (word && (!was_word
                             || ngx_teleclinic_is_ideograph(c)
                             || ngx_teleclinic_is_ideograph(prev))))
            && ngx_memcmp(start, q->data, q->len) == 0)
        {
            return NGX_TELECLINIC_MATCH_WORD;
        }

        prev = c;
        was_word = word;
    }

    return NGX_TELECLINIC_MATCH_NONE;
}


/* the next code point; NGX_TELECLINIC_BAD_UTF8 for what is not UTF-8 */

static uint32_t
ngx_teleclinic_utf8_decode(u_char **p, u_char *last)
{
    u_char    *s;
    size_t     n, i;
    uint32_t   c, min;

    s = *p;
    c = *s++;

    if (c < 0x80) {
        *p = s;
        return c;
    }

    if (c >= 0xc2 && c <= 0xdf) {
        n = 1;
        c &= 0x1f;
        min = 0x80;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2;
        c &= 0x0f;
        min = 0x800;

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3;
        c &= 0x07;
        min = 0x10000;

    } else {
        *p = s;
        return NGX_TELECLINIC_BAD_UTF8;
    }

    for (i = 0; i < n; i++) {
        if (s == last || (*s & 0xc0) != 0x80) {
            *p = s;
            return NGX_TELECLINIC_BAD_UTF8;
        }

        c = (c << 6) | (*s++ & 0x3f);
    }

    *p = s;

    /* overlong forms, surrogates and what lies past Unicode */
    if (c < min || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) {
        return NGX_TELECLINIC_BAD_UTF8;
    }

    return c;
}


static u_char *
ngx_teleclinic_utf8_encode(u_char *p, uint32_t c)
{
    if (c < 0x80) {
        *p++ = (u_char) c;

    } else if (c < 0x800) {
        *p++ = (u_char) (0xc0 | (c >> 6));
        *p++ = (u_char) (0x80 | (c & 0x3f));

    } else if (c < 0x10000) {
        *p++ = (u_char) (0xe0 | (c >> 12));
        *p++ = (u_char) (0x80 | ((c >> 6) & 0x3f));
        *p++ = (u_char) (0x80 | (c & 0x3f));

    } else if (c <= 0x10ffff) {
        *p++ = (u_char) (0xf0 | (c >> 18));
        *p++ = (u_char) (0x80 | ((c >> 12) & 0x3f));
        *p++ = (u_char) (0x80 | ((c >> 6) & 0x3f));
        *p++ = (u_char) (0x80 | (c & 0x3f));
    }

    /* a broken sequence folds to nothing: it matches nothing */

    return p;
}


/*
 * Simple lower case of the Latin, Greek and Cyrillic letters that drug
 * names are written in; each maps to a letter no longer in UTF-8, so a
 * folded text fits where the text did.
 */

static uint32_t
ngx_teleclinic_lower(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 'A' && c <= 'Z') ? c + 0x20 : c;
    }

    if (c >= 0xc0 && c <= 0xde && c != 0xd7) {
        return c + 0x20;
    }

    if (c >= 0x100 && c <= 0x17f) {

        if (c == 0x130) {                          /* I with dot above */
            return 'i';
        }

        if (c == 0x178) {
            return 0xff;
        }

        if (c == 0x17f) {                          /* long s */
            return 's';
        }

        if ((c < 0x138 || (c >= 0x14a && c <= 0x177)) && c % 2 == 0) {
            return c + 1;
        }

        if (((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e))
            && c % 2 == 1)
        {
            return c + 1;
        }

        return c;
    }

    if (c >= 0x370 && c <= 0x3ff) {

        if (c == 0x386) {
            return 0x3ac;
        }

        if (c >= 0x388 && c <= 0x38a) {
            return c + 0x25;
        }

        if (c == 0x38c) {
            return 0x3cc;
        }

        if (c == 0x38e || c == 0x38f) {
            return c + 0x3f;
        }

        if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) {
            return c + 0x20;
        }

        if (c == 0x3c2) {                          /* final sigma */
            return 0x3c3;
        }

        return c;
    }

    if (c >= 0x400 && c <= 0x4ff) {

        if (c <= 0x40f) {
            return c + 0x50;
        }

        if (c <= 0x42f) {
            return c + 0x20;
        }

        if (((c >= 0x460 && c <= 0x481) || (c >= 0x48a && c <= 0x4bf))
            && c % 2 == 0)
        {
            return c + 1;
        }
    }

    return c;
}


/* a letter or a digit: not a space, a punctuation mark or a symbol */

static ngx_uint_t
ngx_teleclinic_is_word(uint32_t c)
{
    if (c < 0x80) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
               || (c >= '0' && c <= '9');
    }

    if ((c >= 0xa0 && c <= 0xbf && c != 0xaa && c != 0xb5 && c != 0xba)
        || c == 0xd7 || c == 0xf7
        || (c >= 0x2000 && c <= 0x206f)            /* punctuation */
        || (c >= 0x2190 && c <= 0x2bff)            /* arrows, symbols */
        || (c >= 0x3000 && c <= 0x303f)            /* CJK punctuation */
        || (c >= 0xfe30 && c <= 0xfe4f)
        || (c >= 0xff01 && c <= 0xff0f)            /* full-width signs */
        || (c >= 0xff1a && c <= 0xff20)
        || (c >= 0xff3b && c <= 0xff40)
        || (c >= 0xff5b && c <= 0xff65)
        || c == NGX_TELECLINIC_BAD_UTF8)
    {
        return 0;
    }

    return 1;
}


/* Han ideographs and the Japanese kana */

static ngx_uint_t
ngx_teleclinic_is_ideograph(uint32_t c)
{
    return (c >= 0x2e80 && c <= 0x2fdf)            /* radicals */
           || (c >= 0x3040 && c <= 0x30ff)         /* kana */
           || (c >= 0x3400 && c <= 0x4dbf)
           || (c >= 0x4e00 && c <= 0x9fff)
           || (c >= 0xf900 && c <= 0xfaff)
           || (c >= 0x20000 && c <= 0x3ffff);
}
