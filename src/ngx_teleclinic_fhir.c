
/*
 * Copyright (C) ngx_teleclinic authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic_fhir.h"


/*
 * The kinds of entry, in the fullUrl UUIDs: with the appointment's id and
 * the item's id in the record they make a UUID that a retry gives again.
 */
#define NGX_TELECLINIC_FHIR_PATIENT        1
#define NGX_TELECLINIC_FHIR_PRACTITIONER   2
#define NGX_TELECLINIC_FHIR_APPOINTMENT    3
#define NGX_TELECLINIC_FHIR_ENCOUNTER      4
#define NGX_TELECLINIC_FHIR_CONDITION      5
#define NGX_TELECLINIC_FHIR_MEDICATION     6
#define NGX_TELECLINIC_FHIR_SERVICE        7
#define NGX_TELECLINIC_FHIR_TASK           8
#define NGX_TELECLINIC_FHIR_MEDIA          9
#define NGX_TELECLINIC_FHIR_CONSENT        10
#define NGX_TELECLINIC_FHIR_OBSERVATION    11

#define NGX_TELECLINIC_FHIR_URN_LEN                                           \
    (sizeof("urn:uuid:00000000-0000-0000-0000-000000000000") - 1)

/* "0123456789abcdef-18446744073709551615" */
#define NGX_TELECLINIC_FHIR_VALUE_LEN      (16 + 1 + NGX_INT64_LEN)

/* the largest time that FHIR's four-digit years can show: 9999-12-31 */
#define NGX_TELECLINIC_FHIR_TIME_MAX       253402300799LL

#define NGX_TELECLINIC_FHIR_TERM  "http://terminology.hl7.org/CodeSystem/"
#define NGX_TELECLINIC_FHIR_ACT   NGX_TELECLINIC_FHIR_TERM "v3-ActCode"


typedef struct {
    u_char                        urn[NGX_TELECLINIC_FHIR_URN_LEN + 1];
    u_char                        value[NGX_TELECLINIC_FHIR_VALUE_LEN + 1];
    const char                   *type;
    const char                   *system;     /* under <base>/fhir/ */
    ngx_uint_t                    create;     /* POST if none exists */
} ngx_teleclinic_fhir_id_t;


typedef struct {
    ngx_teleclinic_fhir_visit_t  *visit;
    ngx_str_t                     base;
    json_t                       *entries;

    ngx_teleclinic_fhir_id_t      patient;
    ngx_teleclinic_fhir_id_t      practitioner;
    ngx_teleclinic_fhir_id_t      appointment;
    ngx_teleclinic_fhir_id_t      encounter;

    ngx_uint_t                    has_practitioner;
    ngx_uint_t                    has_appointment;
    ngx_uint_t                    error;      /* a value could not be made */
} ngx_teleclinic_fhir_ctx_t;


static json_t *ngx_teleclinic_fhir_bundle(ngx_teleclinic_fhir_ctx_t *ctx,
    time_t timestamp);
static void ngx_teleclinic_fhir_init(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_visit_t *v);
static void ngx_teleclinic_fhir_id(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_id_t *id, const char *type, const char *system,
    ngx_uint_t kind, ngx_uint_t item, ngx_uint_t has_item);
static void ngx_teleclinic_fhir_entry(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_id_t *id, json_t *resource);
static json_t *ngx_teleclinic_fhir_identifier(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_id_t *id);
static json_t *ngx_teleclinic_fhir_system(ngx_teleclinic_fhir_ctx_t *ctx,
    const char *name);
static json_t *ngx_teleclinic_fhir_ref(ngx_teleclinic_fhir_id_t *id);
static json_t *ngx_teleclinic_fhir_requester(ngx_teleclinic_fhir_ctx_t *ctx);
static json_t *ngx_teleclinic_fhir_concept(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_str_t *system, ngx_str_t *code, ngx_str_t *text, const char *ours,
    ngx_str_t *our_code);
static json_t *ngx_teleclinic_fhir_coded(const char *system,
    const char *code, const char *display);
static json_t *ngx_teleclinic_fhir_note(ngx_teleclinic_fhir_ctx_t *ctx,
    const char *label, ngx_str_t *text, time_t at);
static void ngx_teleclinic_fhir_add_note(ngx_teleclinic_fhir_ctx_t *ctx,
    json_t *notes, const char *label, ngx_str_t *text, time_t at);
static json_t *ngx_teleclinic_fhir_text(ngx_teleclinic_fhir_ctx_t *ctx,
    const char *label, ngx_str_t *s);
static json_t *ngx_teleclinic_fhir_time(ngx_teleclinic_fhir_ctx_t *ctx,
    time_t t);
static json_t *ngx_teleclinic_fhir_date(ngx_teleclinic_fhir_ctx_t *ctx,
    time_t t);
static json_t *ngx_teleclinic_fhir_base64(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_str_t *data);
static json_t *ngx_teleclinic_fhir_dosage(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_rx_t *rx);
static void ngx_teleclinic_fhir_set(ngx_teleclinic_fhir_ctx_t *ctx,
    json_t *obj, const char *key, json_t *value);
static void ngx_teleclinic_fhir_append(ngx_teleclinic_fhir_ctx_t *ctx,
    json_t *array, json_t *value);
static void *ngx_teleclinic_fhir_alloc(size_t size);
static void ngx_teleclinic_fhir_free(void *p);

static void ngx_teleclinic_fhir_patient(ngx_teleclinic_fhir_ctx_t *ctx);
static void ngx_teleclinic_fhir_practitioner(ngx_teleclinic_fhir_ctx_t *ctx);
static void ngx_teleclinic_fhir_appointment(ngx_teleclinic_fhir_ctx_t *ctx);
static void ngx_teleclinic_fhir_encounter(ngx_teleclinic_fhir_ctx_t *ctx);
static void ngx_teleclinic_fhir_condition(ngx_teleclinic_fhir_ctx_t *ctx);
static void ngx_teleclinic_fhir_medication(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_rx_t *rx);
static void ngx_teleclinic_fhir_service(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_order_t *order);
static void ngx_teleclinic_fhir_task(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_followup_t *fu);
static void ngx_teleclinic_fhir_media(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_snapshot_t *snap);
static void ngx_teleclinic_fhir_consent(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_consent_t *consent);


json_t *
ngx_teleclinic_fhir_record(ngx_teleclinic_fhir_visit_t *v)
{
    ngx_uint_t                 i;
    ngx_teleclinic_fhir_ctx_t  ctx;

    ngx_teleclinic_fhir_init(&ctx, v);

    if (ctx.entries == NULL) {
        return NULL;
    }

    ngx_teleclinic_fhir_patient(&ctx);
    ngx_teleclinic_fhir_practitioner(&ctx);
    ngx_teleclinic_fhir_appointment(&ctx);
    ngx_teleclinic_fhir_encounter(&ctx);
    ngx_teleclinic_fhir_condition(&ctx);

    for (i = 0; i < v->nrx; i++) {
        ngx_teleclinic_fhir_medication(&ctx, &v->rx[i]);
    }

    for (i = 0; i < v->norders; i++) {
        ngx_teleclinic_fhir_service(&ctx, &v->orders[i]);
    }

    for (i = 0; i < v->nfollowups; i++) {
        ngx_teleclinic_fhir_task(&ctx, &v->followups[i]);
    }

    for (i = 0; i < v->nsnapshots; i++) {
        ngx_teleclinic_fhir_media(&ctx, &v->snapshots[i]);
    }

    for (i = 0; i < v->nconsents; i++) {
        ngx_teleclinic_fhir_consent(&ctx, &v->consents[i]);
    }

    return ngx_teleclinic_fhir_bundle(&ctx, v->closed);
}


json_t *
ngx_teleclinic_fhir_rating(ngx_teleclinic_fhir_visit_t *v)
{
    json_t                    *obs, *subject, *encounter;
    ngx_teleclinic_fhir_id_t   id;
    ngx_teleclinic_fhir_ctx_t  ctx;

    if (v->score == 0) {
        return NULL;
    }

    ngx_teleclinic_fhir_init(&ctx, v);

    if (ctx.entries == NULL) {
        return NULL;
    }

    ngx_teleclinic_fhir_id(&ctx, &id, "Observation", "rating",
                           NGX_TELECLINIC_FHIR_OBSERVATION, 0, 0);

    /*
     * The Patient and the Encounter are named by their identifiers, not
     * by conditional references: the patient may rate before the doctor
     * closes the record, and a conditional reference to a resource the
     * EMR does not have yet would fail the whole transaction.
     */

    subject = json_pack("{s:s, s:o}", "type", "Patient", "identifier",
                        ngx_teleclinic_fhir_identifier(&ctx, &ctx.patient));
    encounter = json_pack("{s:s, s:o}", "type", "Encounter", "identifier",
                          ngx_teleclinic_fhir_identifier(&ctx,
                                                         &ctx.encounter));

    obs = json_pack("{s:s, s:[o], s:s, s:[o], s:{s:s}, s:o, s:o, s:I}",
                    "resourceType", "Observation",
                    "identifier", ngx_teleclinic_fhir_identifier(&ctx, &id),
                    "status", "final",
                    "category",
                    ngx_teleclinic_fhir_coded(NGX_TELECLINIC_FHIR_TERM
                                              "observation-category",
                                              "survey", "Survey"),
                    "code", "text", "Patient satisfaction",
                    "subject", subject,
                    "encounter", encounter,
                    "valueInteger", (json_int_t) v->score);

    if (obs != NULL) {
        ngx_teleclinic_fhir_set(&ctx, obs, "effectiveDateTime",
                                ngx_teleclinic_fhir_time(&ctx, v->rated));

        if (v->comment.len) {
            ngx_teleclinic_fhir_set(&ctx, obs, "note",
                                    json_pack("[o]",
                                    ngx_teleclinic_fhir_note(&ctx, NULL,
                                                             &v->comment,
                                                             0)));
        }
    }

    ngx_teleclinic_fhir_entry(&ctx, &id, obs);

    return ngx_teleclinic_fhir_bundle(&ctx, v->rated);
}


static json_t *
ngx_teleclinic_fhir_bundle(ngx_teleclinic_fhir_ctx_t *ctx, time_t timestamp)
{
    json_t  *bundle;

    bundle = json_pack("{s:s, s:s, s:O}",
                       "resourceType", "Bundle",
                       "type", "transaction",
                       "entry", ctx->entries);

    if (bundle != NULL) {
        ngx_teleclinic_fhir_set(ctx, bundle, "timestamp",
                                ngx_teleclinic_fhir_time(ctx, timestamp));
    }

    json_decref(ctx->entries);

    if (bundle == NULL || ctx->error) {
        json_decref(bundle);
        return NULL;
    }

    return bundle;
}


static void
ngx_teleclinic_fhir_init(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_visit_t *v)
{
    ngx_memzero(ctx, sizeof(ngx_teleclinic_fhir_ctx_t));

    ctx->visit = v;
    ctx->base = v->base;

    /* "https://h.example/" and "https://h.example" name one service */
    while (ctx->base.len && ctx->base.data[ctx->base.len - 1] == '/') {
        ctx->base.len--;
    }

    ngx_teleclinic_fhir_id(ctx, &ctx->patient, "Patient", "patient",
                           NGX_TELECLINIC_FHIR_PATIENT, 0, 0);
    ctx->patient.create = 1;

    ngx_teleclinic_fhir_id(ctx, &ctx->encounter, "Encounter", "encounter",
                           NGX_TELECLINIC_FHIR_ENCOUNTER, 0, 0);

    ctx->entries = json_array();
}


/*
 * A UUID of RFC 9562's version 8 (the layout is the application's):
 * the appointment's 64 bits, the kind of entry and the item's id, so
 * that it is unique in the Bundle, and the same in a retried one.
 *
 *   aaaaaaaa-aaaa-8aaa-8akk-iiiiiiiiiiii
 */

static void
ngx_teleclinic_fhir_id(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_id_t *id, const char *type, const char *system,
    ngx_uint_t kind, ngx_uint_t item, ngx_uint_t has_item)
{
    u_char    *p;
    uint64_t   a;

    a = ctx->visit->appt;

    p = ngx_sprintf(id->urn, "urn:uuid:%08xD-%04xD-%04xD-%04xD-%012xL",
                    (uint32_t) (a >> 32), (uint32_t) ((a >> 16) & 0xffff),
                    (uint32_t) (0x8000 | ((a >> 4) & 0x0fff)),
                    (uint32_t) (0x8000 | ((a & 0xf) << 8) | (kind & 0xff)),
                    (uint64_t) item & 0xffffffffffffULL);
    *p = '\0';

    if (has_item) {
        p = ngx_sprintf(id->value, "%016xL-%ui", a, item);

    } else {
        p = ngx_sprintf(id->value, "%016xL", a);
    }

    *p = '\0';

    id->type = type;
    id->system = system;
    id->create = 0;
}


/*
 * A retried Bundle must not duplicate anything: what this service owns
 * is a conditional update by its identifier, which creates it once and
 * replaces it after; the Patient and the Practitioner, whom the EMR knows
 * better than we do, are a conditional create, which leaves an existing
 * one as it is.
 */

static void
ngx_teleclinic_fhir_entry(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_id_t *id, json_t *resource)
{
    u_char     *buf, *p;
    size_t      len, n;
    json_t     *system, *entry, *request, *query;
    uintptr_t   escape;
    const char *s;

    if (resource == NULL) {
        ctx->error = 1;
        return;
    }

    system = ngx_teleclinic_fhir_system(ctx, id->system);

    if (system == NULL) {
        json_decref(resource);
        return;
    }

    s = json_string_value(system);
    n = json_string_length(system);

    escape = ngx_escape_uri(NULL, (u_char *) s, n, NGX_ESCAPE_ARGS);

    len = ngx_strlen(id->type) + sizeof("?identifier=") - 1 + n + 2 * escape
          + sizeof("%7C") - 1 + ngx_strlen(id->value);

    buf = ngx_teleclinic_fhir_alloc(len);

    if (buf == NULL) {
        ctx->error = 1;
        json_decref(system);
        json_decref(resource);
        return;
    }

    p = ngx_sprintf(buf, "%s?identifier=", id->type);
    p = (u_char *) ngx_escape_uri(p, (u_char *) s, n, NGX_ESCAPE_ARGS);
    p = ngx_sprintf(p, "%%7C%s", id->value);

    json_decref(system);

    if (id->create) {
        /* ifNoneExist is the query of a search, without the type */
        n = ngx_strlen(id->type) + 1;
        query = json_stringn((char *) buf + n, p - buf - n);

        request = json_pack("{s:s, s:s, s:o}", "method", "POST",
                            "url", id->type, "ifNoneExist", query);

    } else {
        request = json_pack("{s:s, s:o}", "method", "PUT",
                            "url", json_stringn((char *) buf, p - buf));
    }

    ngx_teleclinic_fhir_free(buf);

    entry = json_pack("{s:s, s:o, s:o}", "fullUrl", id->urn,
                      "resource", resource, "request", request);

    ngx_teleclinic_fhir_append(ctx, ctx->entries, entry);
}


static json_t *
ngx_teleclinic_fhir_identifier(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_id_t *id)
{
    json_t  *system;

    system = ngx_teleclinic_fhir_system(ctx, id->system);

    if (system == NULL) {
        return NULL;
    }

    return json_pack("{s:o, s:s}", "system", system,
                     "value", (char *) id->value);
}


static json_t *
ngx_teleclinic_fhir_system(ngx_teleclinic_fhir_ctx_t *ctx, const char *name)
{
    json_t  *s;

    s = json_sprintf("%.*s/fhir/%s", (int) ctx->base.len,
                     (char *) ctx->base.data, name);

    if (s == NULL) {
        ctx->error = 1;
    }

    return s;
}


static json_t *
ngx_teleclinic_fhir_ref(ngx_teleclinic_fhir_id_t *id)
{
    return json_pack("{s:s}", "reference", (char *) id->urn);
}


/* the doctor, where the Practitioner entry is missing by name alone */

static json_t *
ngx_teleclinic_fhir_requester(ngx_teleclinic_fhir_ctx_t *ctx)
{
    json_t  *display;

    if (ctx->has_practitioner) {
        return ngx_teleclinic_fhir_ref(&ctx->practitioner);
    }

    display = ngx_teleclinic_fhir_text(ctx, NULL, &ctx->visit->doctor_name);

    if (display == NULL) {
        return NULL;
    }

    return json_pack("{s:o}", "display", display);
}


/*
 * A code of someone else's system (the formulary's ATC code, a LOINC
 * exam) first, then our own catalogue's id, so the EMR can always find
 * what was meant; the name as the text a person reads.
 */

static json_t *
ngx_teleclinic_fhir_concept(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_str_t *system, ngx_str_t *code, ngx_str_t *text, const char *ours,
    ngx_str_t *our_code)
{
    json_t  *concept, *codings, *coding;

    concept = json_object();
    codings = json_array();

    if (concept == NULL || codings == NULL) {
        ctx->error = 1;
        json_decref(concept);
        json_decref(codings);
        return NULL;
    }

    if (code->len) {
        coding = json_object();

        ngx_teleclinic_fhir_set(ctx, coding, "system",
                                ngx_teleclinic_fhir_text(ctx, NULL, system));
        ngx_teleclinic_fhir_set(ctx, coding, "code",
                                ngx_teleclinic_fhir_text(ctx, NULL, code));
        ngx_teleclinic_fhir_set(ctx, coding, "display",
                                ngx_teleclinic_fhir_text(ctx, NULL, text));
        ngx_teleclinic_fhir_append(ctx, codings, coding);
    }

    if (our_code->len) {
        coding = json_object();

        ngx_teleclinic_fhir_set(ctx, coding, "system",
                                ngx_teleclinic_fhir_system(ctx, ours));
        ngx_teleclinic_fhir_set(ctx, coding, "code",
                                ngx_teleclinic_fhir_text(ctx, NULL,
                                                         our_code));
        ngx_teleclinic_fhir_append(ctx, codings, coding);
    }

    if (json_array_size(codings)) {
        ngx_teleclinic_fhir_set(ctx, concept, "coding", codings);

    } else {
        json_decref(codings);
    }

    ngx_teleclinic_fhir_set(ctx, concept, "text",
                            ngx_teleclinic_fhir_text(ctx, NULL, text));

    return concept;
}


static json_t *
ngx_teleclinic_fhir_coded(const char *system, const char *code,
    const char *display)
{
    return json_pack("{s:[{s:s, s:s, s:s}]}", "coding", "system", system,
                     "code", code, "display", display);
}


static json_t *
ngx_teleclinic_fhir_note(ngx_teleclinic_fhir_ctx_t *ctx, const char *label,
    ngx_str_t *text, time_t at)
{
    json_t  *note;

    note = json_pack("{s:o}", "text",
                     ngx_teleclinic_fhir_text(ctx, label, text));

    if (note != NULL) {
        ngx_teleclinic_fhir_set(ctx, note, "time",
                                ngx_teleclinic_fhir_time(ctx, at));
    }

    return note;
}


static void
ngx_teleclinic_fhir_add_note(ngx_teleclinic_fhir_ctx_t *ctx, json_t *notes,
    const char *label, ngx_str_t *text, time_t at)
{
    if (text->len == 0) {
        return;
    }

    ngx_teleclinic_fhir_append(ctx, notes,
                               ngx_teleclinic_fhir_note(ctx, label, text,
                                                        at));
}


/*
 * A FHIR string has no control characters but tab, CR and LF, and the
 * R4 schema allows no other white space than those and the space: the
 * rest (form feed, no-break space, the line separator) become spaces,
 * so that a note keeps its words apart.  Bytes that are not UTF-8
 * become U+FFFD: the request parsers refuse them, this is the last
 * line.  NULL for an empty string, which FHIR leaves out.
 */

static json_t *
ngx_teleclinic_fhir_text(ngx_teleclinic_fhir_ctx_t *ctx, const char *label,
    ngx_str_t *s)
{
    u_char    *buf, *p, *q, *i, *last, *start;
    size_t     n;
    json_t    *value;
    uint32_t   u;

    if (s->len == 0) {
        return NULL;
    }

    n = label ? ngx_strlen(label) : 0;

    /* U+FFFD is three bytes for one that is not UTF-8 */
    buf = ngx_teleclinic_fhir_alloc(n + 3 * s->len);

    if (buf == NULL) {
        ctx->error = 1;
        return NULL;
    }

    q = buf;

    if (n) {
        q = ngx_cpymem(q, label, n);
    }

    p = s->data;
    last = s->data + s->len;

    while (p < last) {

        if (*p < 0x80) {
            if (*p < 0x20 && *p != '\t' && *p != '\r' && *p != '\n') {
                *q++ = ' ';

            } else {
                *q++ = *p;
            }

            p++;
            continue;
        }

        start = p;
        u = ngx_utf8_decode(&p, last - p);

        /*
         * nginx's decoder takes any lead byte from 0xf0 up and checks the
         * high bit of a continuation only
         */
        if (*start > 0xf4) {
            u = 0xffffffff;
        }

        for (i = start + 1; u <= 0x10ffff && i < p; i++) {
            if ((*i & 0xc0) != 0x80) {
                u = 0xffffffff;
            }
        }

        if (u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
            /* one U+FFFD a byte, and the next byte read again */
            p = start + 1;
            q = ngx_cpymem(q, "\xef\xbf\xbd", 3);
            continue;
        }

        if (u == 0x85 || u == 0xa0 || u == 0x1680
            || (u >= 0x2000 && u <= 0x200a)
            || u == 0x2028 || u == 0x2029 || u == 0x202f || u == 0x205f
            || u == 0x3000 || u == 0xfeff)
        {
            *q++ = ' ';
            continue;
        }

        q = ngx_cpymem(q, start, p - start);
    }

    value = json_stringn((char *) buf, q - buf);

    ngx_teleclinic_fhir_free(buf);

    if (value == NULL) {
        ctx->error = 1;
    }

    return value;
}


/* an instant in UTC; NULL for 0 (unset) and what FHIR cannot show */

static json_t *
ngx_teleclinic_fhir_time(ngx_teleclinic_fhir_ctx_t *ctx, time_t t)
{
    u_char     buf[sizeof("9999-12-31T23:59:59Z")], *p;
    json_t    *value;
    struct tm  tm;

    if (t <= 0 || (long long) t > NGX_TELECLINIC_FHIR_TIME_MAX
        || gmtime_r(&t, &tm) == NULL)
    {
        return NULL;
    }

    p = ngx_sprintf(buf, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                    tm.tm_hour, tm.tm_min, tm.tm_sec);

    value = json_stringn((char *) buf, p - buf);

    if (value == NULL) {
        ctx->error = 1;
    }

    return value;
}


/*
 * A follow-up's due day is the server's local midnight: the date alone
 * says it, which FHIR reads as the whole day.
 */

static json_t *
ngx_teleclinic_fhir_date(ngx_teleclinic_fhir_ctx_t *ctx, time_t t)
{
    u_char     buf[sizeof("9999-12-31")], *p;
    json_t    *value;
    struct tm  tm;

    if (t <= 0 || (long long) t > NGX_TELECLINIC_FHIR_TIME_MAX - 86400
        || localtime_r(&t, &tm) == NULL)
    {
        return NULL;
    }

    p = ngx_sprintf(buf, "%04d-%02d-%02d",
                    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);

    value = json_stringn((char *) buf, p - buf);

    if (value == NULL) {
        ctx->error = 1;
    }

    return value;
}


static json_t *
ngx_teleclinic_fhir_base64(ngx_teleclinic_fhir_ctx_t *ctx, ngx_str_t *data)
{
    json_t     *value;
    ngx_str_t   dst;

    if (data->len == 0) {
        return NULL;
    }

    dst.data = ngx_teleclinic_fhir_alloc(ngx_base64_encoded_length(data->len));

    if (dst.data == NULL) {
        ctx->error = 1;
        return NULL;
    }

    ngx_encode_base64(&dst, data);

    value = json_stringn((char *) dst.data, dst.len);

    ngx_teleclinic_fhir_free(dst.data);

    if (value == NULL) {
        ctx->error = 1;
    }

    return value;
}


/* "1 tablet, 3 times a day, 5 days": what the doctor wrote, in order */

static json_t *
ngx_teleclinic_fhir_dosage(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_rx_t *rx)
{
    u_char     *buf, *p;
    json_t     *text;
    ngx_str_t   s;

    if (rx->dose.len == 0 && rx->frequency.len == 0 && rx->days == 0) {
        return NULL;
    }

    buf = ngx_teleclinic_fhir_alloc(rx->dose.len + rx->frequency.len
                                    + sizeof(", , days") + NGX_INT_T_LEN);

    if (buf == NULL) {
        ctx->error = 1;
        return NULL;
    }

    p = buf;

    if (rx->dose.len) {
        p = ngx_cpymem(p, rx->dose.data, rx->dose.len);
    }

    if (rx->frequency.len) {
        if (p != buf) {
            p = ngx_cpymem(p, ", ", 2);
        }

        p = ngx_cpymem(p, rx->frequency.data, rx->frequency.len);
    }

    if (rx->days) {
        if (p != buf) {
            p = ngx_cpymem(p, ", ", 2);
        }

        p = ngx_sprintf(p, "%ui %s", rx->days,
                        rx->days == 1 ? "day" : "days");
    }

    s.data = buf;
    s.len = p - buf;

    text = ngx_teleclinic_fhir_text(ctx, NULL, &s);

    ngx_teleclinic_fhir_free(buf);

    if (text == NULL) {
        return NULL;
    }

    return json_pack("[{s:o}]", "text", text);
}


/* a NULL value is left out; a failed set fails the Bundle */

static void
ngx_teleclinic_fhir_set(ngx_teleclinic_fhir_ctx_t *ctx, json_t *obj,
    const char *key, json_t *value)
{
    if (obj == NULL) {
        ctx->error = 1;
        json_decref(value);
        return;
    }

    if (value == NULL) {
        return;
    }

    if (json_object_set_new(obj, key, value) != 0) {
        ctx->error = 1;
    }
}


static void
ngx_teleclinic_fhir_append(ngx_teleclinic_fhir_ctx_t *ctx, json_t *array,
    json_t *value)
{
    if (value == NULL || array == NULL) {
        ctx->error = 1;
        json_decref(value);
        return;
    }

    if (json_array_append_new(array, value) != 0) {
        ctx->error = 1;
    }
}


/*
 * Scratch buffers come from jansson's allocator: the module may have set
 * it, and this file has no pool (it runs outside any request).
 */

static void *
ngx_teleclinic_fhir_alloc(size_t size)
{
    json_malloc_t  alloc;

    json_get_alloc_funcs(&alloc, NULL);

    return alloc(size ? size : 1);
}


static void
ngx_teleclinic_fhir_free(void *p)
{
    json_free_t  release;

    json_get_alloc_funcs(NULL, &release);

    release(p);
}


static void
ngx_teleclinic_fhir_patient(ngx_teleclinic_fhir_ctx_t *ctx)
{
    json_t                       *patient, *text;
    ngx_teleclinic_fhir_visit_t  *v;

    v = ctx->visit;

    patient = json_pack("{s:s, s:[o]}", "resourceType", "Patient",
                        "identifier",
                        ngx_teleclinic_fhir_identifier(ctx, &ctx->patient));

    text = ngx_teleclinic_fhir_text(ctx, NULL, &v->patient_name);

    if (text != NULL) {
        ngx_teleclinic_fhir_set(ctx, patient, "name",
                                json_pack("[{s:o}]", "text", text));
    }

    text = ngx_teleclinic_fhir_text(ctx, NULL, &v->patient_phone);

    if (text != NULL) {
        ngx_teleclinic_fhir_set(ctx, patient, "telecom",
                                json_pack("[{s:s, s:o}]", "system", "phone",
                                          "value", text));
    }

    ngx_teleclinic_fhir_entry(ctx, &ctx->patient, patient);
}


static void
ngx_teleclinic_fhir_practitioner(ngx_teleclinic_fhir_ctx_t *ctx)
{
    u_char                       *p, *last;
    json_t                       *practitioner;
    ngx_teleclinic_fhir_visit_t  *v;

    v = ctx->visit;

    /*
     * The directory's id names the doctor across visits; what is not one
     * (lowercase letters, digits, '-') leaves the doctor named by display
     * alone rather than put into the conditional create's query.
     */

    if (v->doctor.len == 0 || v->doctor.len > NGX_TELECLINIC_ID_MAX) {
        return;
    }

    last = v->doctor.data + v->doctor.len;

    for (p = v->doctor.data; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')
              || *p == '-'))
        {
            return;
        }
    }

    ngx_teleclinic_fhir_id(ctx, &ctx->practitioner, "Practitioner", "doctor",
                           NGX_TELECLINIC_FHIR_PRACTITIONER, 0, 0);

    p = ngx_cpymem(ctx->practitioner.value, v->doctor.data, v->doctor.len);
    *p = '\0';

    ctx->practitioner.create = 1;
    ctx->has_practitioner = 1;

    practitioner = json_pack("{s:s, s:[o]}", "resourceType", "Practitioner",
                             "identifier",
                             ngx_teleclinic_fhir_identifier(ctx,
                                                    &ctx->practitioner));

    if (v->doctor_name.len) {
        ngx_teleclinic_fhir_set(ctx, practitioner, "name",
                                json_pack("[{s:o}]", "text",
                                ngx_teleclinic_fhir_text(ctx, NULL,
                                                         &v->doctor_name)));
    }

    ngx_teleclinic_fhir_entry(ctx, &ctx->practitioner, practitioner);
}


/*
 * The booked slot, which the Encounter's period (the call) does not say:
 * a fulfilled Appointment, which R4 wants with its start and end.
 */

static void
ngx_teleclinic_fhir_appointment(ngx_teleclinic_fhir_ctx_t *ctx)
{
    json_t                       *appt, *doctor, *participants;
    ngx_teleclinic_fhir_visit_t  *v;

    v = ctx->visit;

    if (v->start <= 0 || v->end < v->start
        || (long long) v->end > NGX_TELECLINIC_FHIR_TIME_MAX)
    {
        return;
    }

    ngx_teleclinic_fhir_id(ctx, &ctx->appointment, "Appointment",
                           "appointment", NGX_TELECLINIC_FHIR_APPOINTMENT,
                           0, 0);
    ctx->has_appointment = 1;

    participants = json_pack("[{s:o, s:s}]",
                             "actor", ngx_teleclinic_fhir_ref(&ctx->patient),
                             "status", "accepted");

    doctor = ngx_teleclinic_fhir_requester(ctx);

    if (doctor != NULL) {
        ngx_teleclinic_fhir_append(ctx, participants,
                                   json_pack("{s:o, s:s}", "actor", doctor,
                                             "status", "accepted"));
    }

    appt = json_pack("{s:s, s:[o], s:s, s:o, s:o, s:o}",
                     "resourceType", "Appointment",
                     "identifier",
                     ngx_teleclinic_fhir_identifier(ctx, &ctx->appointment),
                     "status", "fulfilled",
                     "start", ngx_teleclinic_fhir_time(ctx, v->start),
                     "end", ngx_teleclinic_fhir_time(ctx, v->end),
                     "participant", participants);

    ngx_teleclinic_fhir_entry(ctx, &ctx->appointment, appt);
}


static void
ngx_teleclinic_fhir_encounter(ngx_teleclinic_fhir_ctx_t *ctx)
{
    json_t                       *enc, *period, *participant, *text;
    ngx_teleclinic_fhir_visit_t  *v;

    v = ctx->visit;

    enc = json_pack("{s:s, s:[o], s:s, s:{s:s, s:s, s:s}, s:o}",
                    "resourceType", "Encounter",
                    "identifier",
                    ngx_teleclinic_fhir_identifier(ctx, &ctx->encounter),
                    "status", "finished",
                    "class", "system", NGX_TELECLINIC_FHIR_ACT,
                             "code", "VR", "display", "virtual",
                    "subject", ngx_teleclinic_fhir_ref(&ctx->patient));

    participant = ngx_teleclinic_fhir_requester(ctx);

    if (participant != NULL) {
        ngx_teleclinic_fhir_set(ctx, enc, "participant",
                                json_pack("[{s:[o], s:o}]", "type",
                                ngx_teleclinic_fhir_coded(
                                    NGX_TELECLINIC_FHIR_TERM
                                    "v3-ParticipationType",
                                    "PPRF", "primary performer"),
                                "individual", participant));
    }

    if (ctx->has_appointment) {
        ngx_teleclinic_fhir_set(ctx, enc, "appointment",
                                json_pack("[o]",
                                ngx_teleclinic_fhir_ref(&ctx->appointment)));
    }

    period = json_object();
    ngx_teleclinic_fhir_set(ctx, period, "start",
                            ngx_teleclinic_fhir_time(ctx, v->visit_start));
    ngx_teleclinic_fhir_set(ctx, period, "end",
                            ngx_teleclinic_fhir_time(ctx, v->visit_end));

    if (json_object_size(period)) {
        ngx_teleclinic_fhir_set(ctx, enc, "period", period);

    } else {
        json_decref(period);
    }

    text = ngx_teleclinic_fhir_text(ctx, NULL, &v->reason);

    if (text != NULL) {
        ngx_teleclinic_fhir_set(ctx, enc, "reasonCode",
                                json_pack("[{s:o}]", "text", text));
    }

    text = ngx_teleclinic_fhir_text(ctx, NULL, &v->department);

    if (text != NULL) {
        ngx_teleclinic_fhir_set(ctx, enc, "serviceProvider",
                                json_pack("{s:o}", "display", text));
    }

    ngx_teleclinic_fhir_entry(ctx, &ctx->encounter, enc);
}


/*
 * The diagnosis and the rest of the note: R4's Encounter has no note,
 * the Condition has, so the complaint, history, findings, advice and the
 * addenda are its notes, each labelled.  A record without any of them
 * has no Condition.
 */

static void
ngx_teleclinic_fhir_condition(ngx_teleclinic_fhir_ctx_t *ctx)
{
    json_t                          *cond, *notes, *text;
    ngx_uint_t                       i;
    ngx_teleclinic_fhir_id_t         id;
    ngx_teleclinic_fhir_visit_t     *v;
    ngx_teleclinic_fhir_addendum_t  *ad;

    v = ctx->visit;

    if (v->diagnosis.len == 0 && v->complaint.len == 0
        && v->history.len == 0 && v->findings.len == 0
        && v->advice.len == 0 && v->naddenda == 0)
    {
        return;
    }

    ngx_teleclinic_fhir_id(ctx, &id, "Condition", "diagnosis",
                           NGX_TELECLINIC_FHIR_CONDITION, 0, 0);

    cond = json_pack("{s:s, s:[o], s:[o], s:o, s:o}",
                     "resourceType", "Condition",
                     "identifier", ngx_teleclinic_fhir_identifier(ctx, &id),
                     "category",
                     ngx_teleclinic_fhir_coded(NGX_TELECLINIC_FHIR_TERM
                                               "condition-category",
                                               "encounter-diagnosis",
                                               "Encounter Diagnosis"),
                     "subject", ngx_teleclinic_fhir_ref(&ctx->patient),
                     "encounter", ngx_teleclinic_fhir_ref(&ctx->encounter));

    text = ngx_teleclinic_fhir_text(ctx, NULL, &v->diagnosis);

    if (text != NULL) {
        /*
         * A diagnosis made over video, without an examination in
         * person: provisional until the hospital's clinicians confirm it.
         */
        ngx_teleclinic_fhir_set(ctx, cond, "clinicalStatus",
                                ngx_teleclinic_fhir_coded(
                                    NGX_TELECLINIC_FHIR_TERM
                                    "condition-clinical",
                                    "active", "Active"));
        ngx_teleclinic_fhir_set(ctx, cond, "verificationStatus",
                                ngx_teleclinic_fhir_coded(
                                    NGX_TELECLINIC_FHIR_TERM
                                    "condition-ver-status",
                                    "provisional", "Provisional"));
        ngx_teleclinic_fhir_set(ctx, cond, "code",
                                json_pack("{s:o}", "text", text));
    }

    ngx_teleclinic_fhir_set(ctx, cond, "recordedDate",
                            ngx_teleclinic_fhir_time(ctx, v->closed));

    if (ctx->has_practitioner) {
        ngx_teleclinic_fhir_set(ctx, cond, "recorder",
                                ngx_teleclinic_fhir_ref(&ctx->practitioner));
    }

    notes = json_array();

    ngx_teleclinic_fhir_add_note(ctx, notes, "Complaint: ", &v->complaint,
                                 0);
    ngx_teleclinic_fhir_add_note(ctx, notes, "History: ", &v->history, 0);
    ngx_teleclinic_fhir_add_note(ctx, notes, "Findings: ", &v->findings, 0);
    ngx_teleclinic_fhir_add_note(ctx, notes, "Advice: ", &v->advice, 0);

    for (i = 0; i < v->naddenda; i++) {
        ad = &v->addenda[i];
        ngx_teleclinic_fhir_add_note(ctx, notes, "Addendum: ", &ad->text,
                                     ad->at);
    }

    if (json_array_size(notes)) {
        ngx_teleclinic_fhir_set(ctx, cond, "note", notes);

    } else {
        json_decref(notes);
    }

    ngx_teleclinic_fhir_entry(ctx, &id, cond);
}


static void
ngx_teleclinic_fhir_medication(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_rx_t *rx)
{
    json_t                    *mr, *dispense, *note;
    ngx_teleclinic_fhir_id_t   id;

    ngx_teleclinic_fhir_id(ctx, &id, "MedicationRequest", "prescription",
                           NGX_TELECLINIC_FHIR_MEDICATION, rx->id, 1);

    mr = json_pack("{s:s, s:[o], s:s, s:s, s:o, s:o, s:o}",
                   "resourceType", "MedicationRequest",
                   "identifier", ngx_teleclinic_fhir_identifier(ctx, &id),
                   "status", "active",
                   "intent", "order",
                   "medicationCodeableConcept",
                   ngx_teleclinic_fhir_concept(ctx, &rx->system, &rx->code,
                                               &rx->name, "formulary",
                                               &rx->drug),
                   "subject", ngx_teleclinic_fhir_ref(&ctx->patient),
                   "encounter", ngx_teleclinic_fhir_ref(&ctx->encounter));

    ngx_teleclinic_fhir_set(ctx, mr, "authoredOn",
                            ngx_teleclinic_fhir_time(ctx, rx->at));
    ngx_teleclinic_fhir_set(ctx, mr, "requester",
                            ngx_teleclinic_fhir_requester(ctx));

    if (rx->note.len) {
        note = ngx_teleclinic_fhir_note(ctx, NULL, &rx->note, 0);
        ngx_teleclinic_fhir_set(ctx, mr, "note", json_pack("[o]", note));
    }

    ngx_teleclinic_fhir_set(ctx, mr, "dosageInstruction",
                            ngx_teleclinic_fhir_dosage(ctx, rx));

    if (rx->quantity || rx->days) {
        dispense = json_object();

        if (rx->quantity) {
            ngx_teleclinic_fhir_set(ctx, dispense, "quantity",
                                    json_pack("{s:I}", "value",
                                              (json_int_t) rx->quantity));
        }

        if (rx->days) {
            ngx_teleclinic_fhir_set(ctx, dispense, "expectedSupplyDuration",
                                    json_pack("{s:I, s:s, s:s, s:s}",
                                              "value",
                                              (json_int_t) rx->days,
                                              "unit", "days",
                                              "system",
                                              "http://unitsofmeasure.org",
                                              "code", "d"));
        }

        ngx_teleclinic_fhir_set(ctx, mr, "dispenseRequest", dispense);
    }

    ngx_teleclinic_fhir_entry(ctx, &id, mr);
}


static void
ngx_teleclinic_fhir_service(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_order_t *order)
{
    json_t                    *sr, *note;
    ngx_teleclinic_fhir_id_t   id;

    ngx_teleclinic_fhir_id(ctx, &id, "ServiceRequest", "order",
                           NGX_TELECLINIC_FHIR_SERVICE, order->id, 1);

    sr = json_pack("{s:s, s:[o], s:s, s:s, s:o, s:o, s:o}",
                   "resourceType", "ServiceRequest",
                   "identifier", ngx_teleclinic_fhir_identifier(ctx, &id),
                   "status", "active",
                   "intent", "order",
                   "code",
                   ngx_teleclinic_fhir_concept(ctx, &order->system,
                                               &order->code, &order->name,
                                               "exam", &order->exam),
                   "subject", ngx_teleclinic_fhir_ref(&ctx->patient),
                   "encounter", ngx_teleclinic_fhir_ref(&ctx->encounter));

    ngx_teleclinic_fhir_set(ctx, sr, "authoredOn",
                            ngx_teleclinic_fhir_time(ctx, order->at));
    ngx_teleclinic_fhir_set(ctx, sr, "requester",
                            ngx_teleclinic_fhir_requester(ctx));

    if (order->note.len) {
        note = ngx_teleclinic_fhir_note(ctx, NULL, &order->note, 0);
        ngx_teleclinic_fhir_set(ctx, sr, "note", json_pack("[o]", note));
    }

    ngx_teleclinic_fhir_entry(ctx, &id, sr);
}


static void
ngx_teleclinic_fhir_task(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_followup_t *fu)
{
    json_t                    *task, *due;
    ngx_str_t                  none = ngx_null_string;
    ngx_teleclinic_fhir_id_t   id;

    ngx_teleclinic_fhir_id(ctx, &id, "Task", "followup",
                           NGX_TELECLINIC_FHIR_TASK, fu->id, 1);

    task = json_pack("{s:s, s:[o], s:s, s:s, s:o, s:o}",
                     "resourceType", "Task",
                     "identifier", ngx_teleclinic_fhir_identifier(ctx, &id),
                     "status", "requested",
                     "intent", "order",
                     "for", ngx_teleclinic_fhir_ref(&ctx->patient),
                     "encounter", ngx_teleclinic_fhir_ref(&ctx->encounter));

    if (fu->kind.len) {
        ngx_teleclinic_fhir_set(ctx, task, "code",
                                ngx_teleclinic_fhir_concept(ctx, &none, &none,
                                                            &fu->kind,
                                                            "followup-kind",
                                                            &fu->kind));
    }

    ngx_teleclinic_fhir_set(ctx, task, "description",
                            ngx_teleclinic_fhir_text(ctx, NULL, &fu->note));
    ngx_teleclinic_fhir_set(ctx, task, "authoredOn",
                            ngx_teleclinic_fhir_time(ctx, fu->at));
    ngx_teleclinic_fhir_set(ctx, task, "requester",
                            ngx_teleclinic_fhir_requester(ctx));

    due = ngx_teleclinic_fhir_date(ctx, fu->due);

    if (due != NULL) {
        ngx_teleclinic_fhir_set(ctx, task, "restriction",
                                json_pack("{s:{s:o}}", "period",
                                          "end", due));
    }

    ngx_teleclinic_fhir_entry(ctx, &id, task);
}


static void
ngx_teleclinic_fhir_media(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_snapshot_t *snap)
{
    json_t                    *media, *content;
    ngx_teleclinic_fhir_id_t   id;

    ngx_teleclinic_fhir_id(ctx, &id, "Media", "snapshot",
                           NGX_TELECLINIC_FHIR_MEDIA, snap->id, 1);

    content = json_object();

    ngx_teleclinic_fhir_set(ctx, content, "contentType",
                            ngx_teleclinic_fhir_text(ctx, NULL,
                                                     &snap->content_type));
    ngx_teleclinic_fhir_set(ctx, content, "data",
                            ngx_teleclinic_fhir_base64(ctx, &snap->data));
    ngx_teleclinic_fhir_set(ctx, content, "size",
                            json_integer((json_int_t) snap->data.len));
    ngx_teleclinic_fhir_set(ctx, content, "creation",
                            ngx_teleclinic_fhir_time(ctx, snap->taken));

    media = json_pack("{s:s, s:[o], s:s, s:o, s:o, s:o, s:o}",
                      "resourceType", "Media",
                      "identifier", ngx_teleclinic_fhir_identifier(ctx, &id),
                      "status", "completed",
                      "type",
                      ngx_teleclinic_fhir_coded(NGX_TELECLINIC_FHIR_TERM
                                                "media-type",
                                                "image", "Image"),
                      "subject", ngx_teleclinic_fhir_ref(&ctx->patient),
                      "encounter", ngx_teleclinic_fhir_ref(&ctx->encounter),
                      "content", content);

    ngx_teleclinic_fhir_set(ctx, media, "createdDateTime",
                            ngx_teleclinic_fhir_time(ctx, snap->taken));

    if (ctx->has_practitioner) {
        ngx_teleclinic_fhir_set(ctx, media, "operator",
                                ngx_teleclinic_fhir_ref(&ctx->practitioner));
    }

    ngx_teleclinic_fhir_entry(ctx, &id, media);
}


/*
 * The patient's answer to "may the doctor keep a still frame": a privacy
 * consent (scope patient-privacy, LOINC's "Patient Consent" category)
 * under an opt-in policy, to collect one image.  R4 wants a policy or a
 * policy rule (ppc-1) and, for a privacy scope, the patient (ppc-2).
 */

static void
ngx_teleclinic_fhir_consent(ngx_teleclinic_fhir_ctx_t *ctx,
    ngx_teleclinic_fhir_consent_t *consent)
{
    json_t                    *c;
    ngx_uint_t                 granted;
    ngx_teleclinic_fhir_id_t   id;

    ngx_teleclinic_fhir_id(ctx, &id, "Consent", "consent",
                           NGX_TELECLINIC_FHIR_CONSENT, consent->request, 1);

    granted = consent->granted && consent->answered;

    c = json_pack("{s:s, s:[o], s:s, s:o, s:[o], s:o, s:[o], s:o,"
                  " s:{s:s, s:[o]}}",
                  "resourceType", "Consent",
                  "identifier", ngx_teleclinic_fhir_identifier(ctx, &id),
                  "status", granted ? "active" : "rejected",
                  "scope",
                  ngx_teleclinic_fhir_coded(NGX_TELECLINIC_FHIR_TERM
                                            "consentscope",
                                            "patient-privacy",
                                            "Privacy Consent"),
                  "category",
                  ngx_teleclinic_fhir_coded("http://loinc.org", "59284-0",
                                            "Patient Consent"),
                  "patient", ngx_teleclinic_fhir_ref(&ctx->patient),
                  "performer", ngx_teleclinic_fhir_ref(&ctx->patient),
                  "policyRule",
                  ngx_teleclinic_fhir_coded(NGX_TELECLINIC_FHIR_ACT,
                                            "OPTIN", "opt-in"),
                  "provision",
                  "type", granted ? "permit" : "deny",
                  "action",
                  ngx_teleclinic_fhir_coded(NGX_TELECLINIC_FHIR_TERM
                                            "consentaction",
                                            "collect", "Collect"));

    ngx_teleclinic_fhir_set(ctx, c, "dateTime",
                            ngx_teleclinic_fhir_time(ctx,
                                                     consent->answered
                                                     ? consent->answered
                                                     : consent->asked));

    ngx_teleclinic_fhir_entry(ctx, &id, c);
}
