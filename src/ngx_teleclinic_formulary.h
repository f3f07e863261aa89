
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_FORMULARY_H_INCLUDED_
#define _NGX_TELECLINIC_FORMULARY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_teleclinic.h"
#include "ngx_teleclinic_request.h"


/* the formulary file's JSON text */
#define NGX_TELECLINIC_FORMULARY_MAX   (4 * 1024 * 1024)

/* the drugs one search answers */
#define NGX_TELECLINIC_FORMULARY_HITS  20

/* the bytes of a search text, once percent-decoded */
#define NGX_TELECLINIC_QUERY_MAX       100


/*
 * A name of a drug or an exam: the name itself (lang empty) or a
 * translation.  folded is the name in lower case, which searches compare
 * with; anywhere is set for ideographic text (Chinese, Japanese), which
 * has no spaces between words and so is matched at any character.
 */
typedef struct {
    ngx_str_t                     lang;
    ngx_str_t                     text;
    ngx_str_t                     folded;
    ngx_uint_t                    anywhere;
} ngx_teleclinic_name_t;


/* FHIR Medication: the formulary's entry, coded (e.g. WHO ATC) */
typedef struct {
    ngx_str_t                     id;
    ngx_str_t                     name;
    ngx_str_t                     form;
    ngx_str_t                     strength;
    ngx_str_t                     code;      /* empty when not coded */
    ngx_str_t                     system;    /* the code's system URI */
    ngx_teleclinic_name_t        *names;     /* the name first */
    ngx_uint_t                    nnames;
    ngx_uint_t                    order;     /* in the file, for ties */
} ngx_teleclinic_drug_t;


/* an exam that can be ordered (FHIR ServiceRequest.code, e.g. LOINC) */
typedef struct {
    ngx_str_t                     id;
    ngx_str_t                     name;
    ngx_str_t                     code;      /* empty when not coded */
    ngx_str_t                     system;
    ngx_teleclinic_name_t        *names;
    ngx_uint_t                    nnames;
} ngx_teleclinic_exam_t;


typedef struct {
    ngx_teleclinic_drug_t        *drugs;     /* as in the file */
    ngx_uint_t                    ndrugs;
    ngx_teleclinic_drug_t       **by_name;   /* the search's order */
    ngx_teleclinic_exam_t        *exams;     /* as in the file */
    ngx_uint_t                    nexams;
} ngx_teleclinic_formulary_t;


/* what is wrong with a formulary file; the strings are static */
typedef struct {
    const char                   *list;      /* "drugs", "exams" or NULL */
    ngx_uint_t                    item;      /* from 0, in that list */
    const char                   *message;
} ngx_teleclinic_formulary_err_t;


/*
 * Parses and checks a formulary document into memory of the pool (the
 * text may be freed after).  NGX_ERROR with *err filled when the
 * document is invalid or memory runs out.
 */
ngx_int_t ngx_teleclinic_formulary_parse(ngx_teleclinic_formulary_t *f,
    ngx_pool_t *pool, u_char *text, size_t len,
    ngx_teleclinic_formulary_err_t *err);

ngx_teleclinic_drug_t *ngx_teleclinic_drug_find(
    ngx_teleclinic_formulary_t *f, ngx_str_t *id);
ngx_teleclinic_exam_t *ngx_teleclinic_exam_find(
    ngx_teleclinic_formulary_t *f, ngx_str_t *id);

/*
 * The search text of a query string's "q" argument, percent-decoded
 * ('+' is a space) into buf, which holds NGX_TELECLINIC_QUERY_MAX bytes,
 * and trimmed of spaces.  A missing q is an empty one.  NGX_ERROR with
 * 422 invalid_field in *err when it is too long, not UTF-8 or holds a
 * control character.  Takes untrusted bytes; fuzzed.
 */
ngx_int_t ngx_teleclinic_formulary_query(u_char *args, size_t len,
    u_char *buf, ngx_str_t *q, ngx_teleclinic_error_t *err);

/*
 * Up to max drugs with a name in which a word starts with q (in any
 * case; ideographic names: q anywhere in them) into hits: those of which
 * q begins a name first, then the others, each part in the order of
 * the names.  An empty q matches every drug.  Returns the number found.
 */
ngx_uint_t ngx_teleclinic_formulary_search(ngx_teleclinic_formulary_t *f,
    ngx_str_t *q, ngx_teleclinic_drug_t **hits, ngx_uint_t max);


#endif /* _NGX_TELECLINIC_FORMULARY_H_INCLUDED_ */
