
/*
 * Copyright (C) ngx_teleclinic authors
 */


/*
 * libFuzzer target for the FHIR Bundles of ngx_teleclinic_fhir.c: the
 * input is read as a visit (numbers, item counts, then every text field,
 * each a length byte and its bytes: any bytes, not only UTF-8).  The
 * builder must give a Bundle jansson can dump and read back, with one
 * entry per item, unique fullUrls and no text FHIR refuses; the rating
 * Bundle exactly when there is a score.  The record's item ids are
 * unique in their kind, as the header asks; the rest is arbitrary.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_fhir.h"


#define fuzz_assert(expr)                                                     \
    if (!(expr)) {                                                            \
        fprintf(stderr, "%s:%d: invariant failed: %s\n",                      \
                __FILE__, __LINE__, #expr);                                   \
        abort();                                                              \
    }

#define FUZZ_FHIR_ITEMS  4


typedef struct {
    u_char  *pos;
    u_char  *last;
} fuzz_input_t;


static uint64_t fuzz_number(fuzz_input_t *in, size_t n);
static void fuzz_text(fuzz_input_t *in, ngx_str_t *s);
static void fuzz_check(json_t *bundle, size_t min, size_t max);
static void fuzz_strings(json_t *v);


static ngx_str_t  fuzz_bases[] = {
    ngx_string("https://clinic.example/tc"),
    ngx_string("https://clinic.example/"),
    ngx_string("")
};


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                          items, i;
    json_t                         *bundle;
    fuzz_input_t                    in;
    ngx_teleclinic_fhir_visit_t     v;
    ngx_teleclinic_fhir_rx_t        rx[FUZZ_FHIR_ITEMS];
    ngx_teleclinic_fhir_order_t     orders[FUZZ_FHIR_ITEMS];
    ngx_teleclinic_fhir_followup_t  fu[FUZZ_FHIR_ITEMS];
    ngx_teleclinic_fhir_snapshot_t  snaps[FUZZ_FHIR_ITEMS];
    ngx_teleclinic_fhir_consent_t   consents[FUZZ_FHIR_ITEMS];
    ngx_teleclinic_fhir_addendum_t  addenda[FUZZ_FHIR_ITEMS];

    in.pos = (u_char *) data;
    in.last = (u_char *) data + size;

    ngx_memzero(&v, sizeof(ngx_teleclinic_fhir_visit_t));
    ngx_memzero(rx, sizeof(rx));
    ngx_memzero(orders, sizeof(orders));
    ngx_memzero(fu, sizeof(fu));
    ngx_memzero(snaps, sizeof(snaps));
    ngx_memzero(consents, sizeof(consents));
    ngx_memzero(addenda, sizeof(addenda));

    v.base = fuzz_bases[fuzz_number(&in, 1) % 3];
    v.appt = fuzz_number(&in, 8);

    /* times of any sign and size: the builder leaves out what FHIR
     * cannot show */
    v.start = (time_t) fuzz_number(&in, 8);
    v.end = (time_t) fuzz_number(&in, 8);
    v.visit_start = (time_t) fuzz_number(&in, 5);
    v.visit_end = (time_t) fuzz_number(&in, 5);
    v.closed = (time_t) fuzz_number(&in, 5);
    v.rated = (time_t) fuzz_number(&in, 5);
    v.score = fuzz_number(&in, 1) % 7;

    v.nrx = fuzz_number(&in, 1) % (FUZZ_FHIR_ITEMS + 1);
    v.norders = fuzz_number(&in, 1) % (FUZZ_FHIR_ITEMS + 1);
    v.nfollowups = fuzz_number(&in, 1) % (FUZZ_FHIR_ITEMS + 1);
    v.nsnapshots = fuzz_number(&in, 1) % (FUZZ_FHIR_ITEMS + 1);
    v.nconsents = fuzz_number(&in, 1) % (FUZZ_FHIR_ITEMS + 1);
    v.naddenda = fuzz_number(&in, 1) % (FUZZ_FHIR_ITEMS + 1);

    v.rx = rx;
    v.orders = orders;
    v.followups = fu;
    v.snapshots = snaps;
    v.consents = consents;
    v.addenda = addenda;

    fuzz_text(&in, &v.patient_name);
    fuzz_text(&in, &v.patient_phone);
    fuzz_text(&in, &v.reason);
    fuzz_text(&in, &v.doctor);
    fuzz_text(&in, &v.doctor_name);
    fuzz_text(&in, &v.department);
    fuzz_text(&in, &v.complaint);
    fuzz_text(&in, &v.history);
    fuzz_text(&in, &v.findings);
    fuzz_text(&in, &v.diagnosis);
    fuzz_text(&in, &v.advice);
    fuzz_text(&in, &v.comment);

    for (i = 0; i < FUZZ_FHIR_ITEMS; i++) {
        fuzz_text(&in, &rx[i].drug);
        fuzz_text(&in, &rx[i].name);
        fuzz_text(&in, &rx[i].code);
        fuzz_text(&in, &rx[i].system);
        fuzz_text(&in, &rx[i].dose);
        fuzz_text(&in, &rx[i].frequency);
        fuzz_text(&in, &rx[i].note);
        rx[i].days = fuzz_number(&in, 2);
        rx[i].quantity = fuzz_number(&in, 8);
        rx[i].id = fuzz_number(&in, 2) * FUZZ_FHIR_ITEMS + i;
        rx[i].at = (time_t) fuzz_number(&in, 5);

        fuzz_text(&in, &orders[i].exam);
        fuzz_text(&in, &orders[i].name);
        fuzz_text(&in, &orders[i].code);
        fuzz_text(&in, &orders[i].system);
        fuzz_text(&in, &orders[i].note);
        orders[i].id = fuzz_number(&in, 2) * FUZZ_FHIR_ITEMS + i;

        fuzz_text(&in, &fu[i].kind);
        fuzz_text(&in, &fu[i].note);
        fu[i].due = (time_t) fuzz_number(&in, 8);
        fu[i].id = fuzz_number(&in, 2) * FUZZ_FHIR_ITEMS + i;

        fuzz_text(&in, &snaps[i].content_type);
        fuzz_text(&in, &snaps[i].data);
        snaps[i].id = fuzz_number(&in, 2) * FUZZ_FHIR_ITEMS + i;
        snaps[i].taken = (time_t) fuzz_number(&in, 5);

        consents[i].request = fuzz_number(&in, 2) * FUZZ_FHIR_ITEMS
                              + i;
        consents[i].asked = (time_t) fuzz_number(&in, 5);
        consents[i].answered = (time_t) fuzz_number(&in, 5);
        consents[i].granted = fuzz_number(&in, 1) & 1;

        fuzz_text(&in, &addenda[i].text);
        addenda[i].at = (time_t) fuzz_number(&in, 5);
        addenda[i].id = i + 1;
    }

    items = v.nrx + v.norders + v.nfollowups + v.nsnapshots + v.nconsents;

    /* Patient, Encounter; Practitioner, Appointment, Condition may be */
    bundle = ngx_teleclinic_fhir_record(&v);
    fuzz_assert(bundle != NULL);
    fuzz_check(bundle, items + 2, items + 5);
    json_decref(bundle);

    bundle = ngx_teleclinic_fhir_rating(&v);
    fuzz_assert((bundle != NULL) == (v.score != 0));

    if (bundle != NULL) {
        fuzz_check(bundle, 1, 1);
        json_decref(bundle);
    }

    return 0;
}


/* n bytes, big-endian; zeros past the end of the input */

static uint64_t
fuzz_number(fuzz_input_t *in, size_t n)
{
    uint64_t  u;

    for (u = 0; n; n--) {
        u <<= 8;

        if (in->pos < in->last) {
            u |= *in->pos++;
        }
    }

    return u;
}


static void
fuzz_text(fuzz_input_t *in, ngx_str_t *s)
{
    size_t  n;

    n = (size_t) fuzz_number(in, 1);
    n = ngx_min(n, (size_t) (in->last - in->pos));

    s->data = in->pos;
    s->len = n;

    in->pos += n;
}


static void
fuzz_check(json_t *bundle, size_t min, size_t max)
{
    char        *text;
    size_t       i, j, n;
    json_t      *entries, *back;
    const char  *a, *b;

    text = json_dumps(bundle, JSON_COMPACT);
    fuzz_assert(text != NULL);

    back = json_loads(text, 0, NULL);
    fuzz_assert(back != NULL);
    fuzz_assert(json_equal(back, bundle));
    json_decref(back);
    free(text);

    fuzz_assert(ngx_strcmp(json_string_value(json_object_get(bundle, "type")),
                           "transaction") == 0);

    entries = json_object_get(bundle, "entry");
    n = json_array_size(entries);
    fuzz_assert(n >= min && n <= max);

    for (i = 0; i < n; i++) {
        a = json_string_value(json_object_get(json_array_get(entries, i),
                                              "fullUrl"));
        fuzz_assert(a != NULL && ngx_strncmp(a, "urn:uuid:", 9) == 0);

        for (j = 0; j < i; j++) {
            b = json_string_value(json_object_get(json_array_get(entries, j),
                                                  "fullUrl"));
            fuzz_assert(ngx_strcmp(a, b) != 0);
        }
    }

    fuzz_strings(bundle);
}


/* FHIR's strings: no control characters but tab, CR and LF, not empty */

static void
fuzz_strings(json_t *v)
{
    size_t       i, n;
    json_t      *value;
    const char  *key, *s;

    switch (json_typeof(v)) {

    case JSON_OBJECT:
        json_object_foreach(v, key, value) {
            fuzz_strings(value);
        }
        break;

    case JSON_ARRAY:
        json_array_foreach(v, i, value) {
            fuzz_strings(value);
        }
        break;

    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        fuzz_assert(n > 0);

        for (i = 0; i < n; i++) {
            fuzz_assert((u_char) s[i] >= 0x20 || s[i] == '\t'
                        || s[i] == '\r' || s[i] == '\n');
        }
        break;

    default:
        break;
    }
}
