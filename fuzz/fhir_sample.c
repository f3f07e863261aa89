
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * The test driver of t/082-fhir.t: builds the FHIR Bundles of a few
 * sample visits with src/ngx_teleclinic_fhir.c and prints them, one JSON
 * document on one line, or "null" when the builder gives none.
 *
 *   fhir_sample empty|full|large|rating|unrated
 *
 * The test knows these samples: change one, change its assertions.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_fhir.h"


#define ngx_fhir_sample_str(s)  { sizeof(s) - 1, (u_char *) s }

/* 2026-03-02T09:00:00Z, the sample slot's start */
#define NGX_FHIR_SAMPLE_T0      1772442000


static void ngx_fhir_sample_visit(ngx_teleclinic_fhir_visit_t *v);
static void ngx_fhir_sample_full(ngx_teleclinic_fhir_visit_t *v);
static void ngx_fhir_sample_large(ngx_teleclinic_fhir_visit_t *v);
static void ngx_fhir_sample_bytes(ngx_str_t *s, size_t len, u_char seed);
static void ngx_fhir_sample_repeat(ngx_str_t *s, const char *text,
    size_t times);


/* Chinese, emoji, quotes, backslashes, control characters, bad UTF-8 */
static u_char  ngx_fhir_sample_complaint[] =
    "\xe5\x92\xb3\xe5\x97\xbd\xe4\xb8\x89\xe5\xa4\xa9 cough for 3 days "
    "\xf0\x9f\xa4\x92 \"quoted\" back\\slash tab\there\r\nline\x01\x07"
    "\x0c\x0b nbsp\xc2\xa0sep\xe2\x80\xa8 bad\xff\xc3\x28 end";

static ngx_teleclinic_fhir_rx_t  ngx_fhir_sample_rx[] = {
    { ngx_fhir_sample_str("paracetamol-500"),
      ngx_fhir_sample_str("Paracetamol \xe5\xaf\xb9\xe4\xb9\x99\xe9\x85\xb0"
                          "\xe6\xb0\xa8\xe5\x9f\xba\xe9\x85\x9a 500 mg"),
      ngx_fhir_sample_str("N02BE01"),
      ngx_fhir_sample_str("http://www.whocc.no/atc"),
      ngx_fhir_sample_str("1 tablet"),
      ngx_fhir_sample_str("3 times a day"),
      5, 15,
      ngx_fhir_sample_str("after meals \"with water\""),
      1, NGX_FHIR_SAMPLE_T0 + 600 },

    { ngx_fhir_sample_str("oral-rehydration"),
      ngx_fhir_sample_str("Oral rehydration salts"),
      ngx_null_string, ngx_null_string,
      ngx_null_string, ngx_null_string,
      0, 0,
      ngx_null_string,
      3, NGX_FHIR_SAMPLE_T0 + 610 }
};

static ngx_teleclinic_fhir_order_t  ngx_fhir_sample_orders[] = {
    { ngx_fhir_sample_str("cbc"),
      ngx_fhir_sample_str("Complete blood count"),
      ngx_fhir_sample_str("58410-2"),
      ngx_fhir_sample_str("http://loinc.org"),
      ngx_fhir_sample_str("fasting not needed"),
      1, NGX_FHIR_SAMPLE_T0 + 620 },

    { ngx_fhir_sample_str("chest-xray"),
      ngx_fhir_sample_str("Chest X-ray \xe8\x83\xb8\xe7\x89\x87"),
      ngx_null_string, ngx_null_string,
      ngx_null_string,
      2, NGX_FHIR_SAMPLE_T0 + 630 }
};

static ngx_teleclinic_fhir_followup_t  ngx_fhir_sample_followups[] = {
    { ngx_fhir_sample_str("payment"), ngx_fhir_sample_str("co-pay 20"),
      0, 1, NGX_FHIR_SAMPLE_T0 + 640 },
    { ngx_fhir_sample_str("pharmacy"),
      ngx_fhir_sample_str("deliver to home"),
      0, 2, NGX_FHIR_SAMPLE_T0 + 641 },
    { ngx_fhir_sample_str("exam"), ngx_null_string,
      0, 3, NGX_FHIR_SAMPLE_T0 + 642 },
    { ngx_fhir_sample_str("revisit"),
      ngx_fhir_sample_str("in a week \xf0\x9f\x93\x85"),
      0, 4, NGX_FHIR_SAMPLE_T0 + 643 }
};

static ngx_teleclinic_fhir_snapshot_t  ngx_fhir_sample_snapshots[2];

static ngx_teleclinic_fhir_consent_t  ngx_fhir_sample_consents[] = {
    { 1, NGX_FHIR_SAMPLE_T0 + 300, NGX_FHIR_SAMPLE_T0 + 305, 1 },
    { 2, NGX_FHIR_SAMPLE_T0 + 400, NGX_FHIR_SAMPLE_T0 + 410, 0 }
};

static ngx_teleclinic_fhir_addendum_t  ngx_fhir_sample_addenda[] = {
    { ngx_fhir_sample_str("lab result: normal \xe6\xad\xa3\xe5\xb8\xb8"),
      NGX_FHIR_SAMPLE_T0 + 86400, 1 }
};


/* static, as what it points to: LeakSanitizer finds it all reachable */
static ngx_teleclinic_fhir_visit_t  v;


int
main(int argc, char **argv)
{
    json_t  *bundle;

    if (argc != 2) {
        fprintf(stderr, "usage: fhir_sample empty|full|large|rating"
                        "|unrated\n");
        return 2;
    }

    ngx_fhir_sample_visit(&v);

    if (strcmp(argv[1], "empty") == 0) {
        bundle = ngx_teleclinic_fhir_record(&v);

    } else if (strcmp(argv[1], "full") == 0) {
        ngx_fhir_sample_full(&v);
        bundle = ngx_teleclinic_fhir_record(&v);

    } else if (strcmp(argv[1], "large") == 0) {
        ngx_fhir_sample_large(&v);
        bundle = ngx_teleclinic_fhir_record(&v);

    } else if (strcmp(argv[1], "rating") == 0) {
        v.score = 4;
        v.comment = (ngx_str_t) ngx_fhir_sample_str(
                        "\xe5\xbe\x88\xe5\xa5\xbd very kind \xf0\x9f\x91\x8d"
                        " \"5 stars\"\x02");
        v.rated = NGX_FHIR_SAMPLE_T0 + 7200;
        bundle = ngx_teleclinic_fhir_rating(&v);

    } else if (strcmp(argv[1], "unrated") == 0) {
        bundle = ngx_teleclinic_fhir_rating(&v);

    } else {
        fprintf(stderr, "fhir_sample: unknown sample \"%s\"\n", argv[1]);
        return 2;
    }

    if (bundle == NULL) {
        printf("null\n");
        return 0;
    }

    if (json_dumpf(bundle, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) != 0) {
        fprintf(stderr, "fhir_sample: json_dumpf() failed\n");
        return 1;
    }

    printf("\n");

    json_decref(bundle);

    return 0;
}


/* an appointment with no record yet: what every sample starts from */

static void
ngx_fhir_sample_visit(ngx_teleclinic_fhir_visit_t *v)
{
    ngx_memzero(v, sizeof(ngx_teleclinic_fhir_visit_t));

    v->appt = 0x0123456789abcdefULL;
    v->base = (ngx_str_t) ngx_fhir_sample_str("https://clinic.example/tc/");
    v->patient_name = (ngx_str_t) ngx_fhir_sample_str(
                          "\xe7\x8e\x8b\xe5\xb0\x8f\xe6\x98\x8e "
                          "Wang Xiaoming");
    v->patient_phone = (ngx_str_t) ngx_fhir_sample_str("+8613800138000");
    v->reason = (ngx_str_t) ngx_fhir_sample_str("fever and cough");
    v->doctor = (ngx_str_t) ngx_fhir_sample_str("dr-li");
    v->doctor_name = (ngx_str_t) ngx_fhir_sample_str("Dr. Li Na");
    v->department = (ngx_str_t) ngx_fhir_sample_str("Internal medicine");
    v->start = NGX_FHIR_SAMPLE_T0;
    v->end = NGX_FHIR_SAMPLE_T0 + 900;
    v->visit_start = NGX_FHIR_SAMPLE_T0 + 60;
    v->visit_end = NGX_FHIR_SAMPLE_T0 + 840;
    v->closed = NGX_FHIR_SAMPLE_T0 + 1200;
}


static void
ngx_fhir_sample_full(ngx_teleclinic_fhir_visit_t *v)
{
    ngx_uint_t  i;

    v->complaint.data = ngx_fhir_sample_complaint;
    v->complaint.len = sizeof(ngx_fhir_sample_complaint) - 1;
    v->history = (ngx_str_t) ngx_fhir_sample_str("asthma since 2010");
    v->findings = (ngx_str_t) ngx_fhir_sample_str("temp 38.2 C, dry cough");
    v->diagnosis = (ngx_str_t) ngx_fhir_sample_str(
                       "Acute bronchitis \xe6\x80\xa5\xe6\x80\xa7"
                       "\xe6\x94\xaf\xe6\xb0\x94\xe7\xae\xa1\xe7\x82\x8e");
    v->advice = (ngx_str_t) ngx_fhir_sample_str("rest, fluids");

    /* a follow-up's due day is the server's local midnight */
    for (i = 0; i < 4; i++) {
        ngx_fhir_sample_followups[i].due = (i == 2) ? 0
                                           : NGX_FHIR_SAMPLE_T0 - 9 * 3600
                                             + (i + 1) * 86400;
    }

    ngx_fhir_sample_snapshots[0].id = 1;
    ngx_fhir_sample_snapshots[0].taken = NGX_FHIR_SAMPLE_T0 + 320;
    ngx_fhir_sample_snapshots[0].content_type =
                                   (ngx_str_t) ngx_fhir_sample_str("image/png");
    ngx_fhir_sample_bytes(&ngx_fhir_sample_snapshots[0].data, 300, 1);

    ngx_fhir_sample_snapshots[1].id = 2;
    ngx_fhir_sample_snapshots[1].taken = NGX_FHIR_SAMPLE_T0 + 330;
    ngx_fhir_sample_snapshots[1].content_type =
                                  (ngx_str_t) ngx_fhir_sample_str("image/jpeg");
    ngx_fhir_sample_bytes(&ngx_fhir_sample_snapshots[1].data, 1000, 2);

    v->rx = ngx_fhir_sample_rx;
    v->nrx = 2;
    v->orders = ngx_fhir_sample_orders;
    v->norders = 2;
    v->followups = ngx_fhir_sample_followups;
    v->nfollowups = 4;
    v->snapshots = ngx_fhir_sample_snapshots;
    v->nsnapshots = 2;
    v->consents = ngx_fhir_sample_consents;
    v->nconsents = 2;
    v->addenda = ngx_fhir_sample_addenda;
    v->naddenda = 1;

    v->score = 5;
}


/* every text at the API's 4,000 characters, many items, a 1 MiB image */

static void
ngx_fhir_sample_large(ngx_teleclinic_fhir_visit_t *v)
{
    ngx_uint_t                       i;
    ngx_teleclinic_fhir_rx_t        *rx;
    ngx_teleclinic_fhir_snapshot_t  *snap;

    ngx_fhir_sample_repeat(&v->complaint, "\xe5\x92\xb3", 4000);
    ngx_fhir_sample_repeat(&v->history, "h", 4000);
    ngx_fhir_sample_repeat(&v->findings, "\xf0\x9f\xa4\x92", 4000);
    ngx_fhir_sample_repeat(&v->diagnosis, "d\\\"", 2000);
    ngx_fhir_sample_repeat(&v->advice, "advice ", 571);

    rx = calloc(100, sizeof(ngx_teleclinic_fhir_rx_t));
    snap = calloc(1, sizeof(ngx_teleclinic_fhir_snapshot_t));

    if (rx == NULL || snap == NULL) {
        fprintf(stderr, "fhir_sample: out of memory\n");
        exit(1);
    }

    for (i = 0; i < 100; i++) {
        rx[i] = ngx_fhir_sample_rx[0];
        rx[i].id = i + 1;
        ngx_fhir_sample_repeat(&rx[i].note, "n", 4000);
    }

    snap->id = 1;
    snap->taken = NGX_FHIR_SAMPLE_T0 + 320;
    snap->content_type = (ngx_str_t) ngx_fhir_sample_str("image/jpeg");
    ngx_fhir_sample_bytes(&snap->data, 1024 * 1024, 3);

    v->rx = rx;
    v->nrx = 100;
    v->snapshots = snap;
    v->nsnapshots = 1;
}


/*
 * An image's bytes, every byte value, in a sequence that the test
 * computes again: byte i is (i * 7 + seed) mod 256.
 */

static void
ngx_fhir_sample_bytes(ngx_str_t *s, size_t len, u_char seed)
{
    size_t  i;

    s->data = malloc(len);

    if (s->data == NULL) {
        fprintf(stderr, "fhir_sample: out of memory\n");
        exit(1);
    }

    for (i = 0; i < len; i++) {
        s->data[i] = (u_char) (i * 7 + seed);
    }

    s->len = len;
}


static void
ngx_fhir_sample_repeat(ngx_str_t *s, const char *text, size_t times)
{
    size_t   n, i;
    u_char  *p;

    n = strlen(text);

    s->data = malloc(n * times);

    if (s->data == NULL) {
        fprintf(stderr, "fhir_sample: out of memory\n");
        exit(1);
    }

    for (p = s->data, i = 0; i < times; i++) {
        p = ngx_cpymem(p, text, n);
    }

    s->len = n * times;
}
