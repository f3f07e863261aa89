
/*
 * Copyright (C) ngx_teleclinic authors
 */


#ifndef _NGX_TELECLINIC_FHIR_H_INCLUDED_
#define _NGX_TELECLINIC_FHIR_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <jansson.h>
#include "ngx_teleclinic.h"


/*
 * A closed visit as the hospital's EMR gets it: FHIR R4 transaction
 * Bundles built from a copy of the visit's record, taken under the zone's
 * lock and built after it.  Every string is UTF-8, not NUL-terminated; an
 * empty string (len 0) is left out of the resources.  Times are Unix
 * seconds, 0 for unset.  The ids of the items (prescriptions, orders,
 * follow-ups, snapshots, consent requests) are unique in their kind and
 * below 2^48: they name the entries' fullUrls.
 */

typedef struct {
    ngx_str_t                     drug;        /* the formulary's id */
    ngx_str_t                     name;        /* the formulary's name */
    ngx_str_t                     code;        /* e.g. an ATC code */
    ngx_str_t                     system;      /* the code's system URI */
    ngx_str_t                     dose;
    ngx_str_t                     frequency;
    ngx_uint_t                    days;        /* 0: unset */
    ngx_uint_t                    quantity;    /* 0: unset */
    ngx_str_t                     note;
    ngx_uint_t                    id;          /* in the record */
    time_t                        at;
} ngx_teleclinic_fhir_rx_t;


typedef struct {
    ngx_str_t                     exam;        /* the catalogue's id */
    ngx_str_t                     name;
    ngx_str_t                     code;        /* may be empty */
    ngx_str_t                     system;
    ngx_str_t                     note;
    ngx_uint_t                    id;
    time_t                        at;
} ngx_teleclinic_fhir_order_t;


typedef struct {
    ngx_str_t                     kind;        /* payment, pharmacy, exam,
                                                  revisit */
    ngx_str_t                     note;
    time_t                        due;         /* local midnight; 0: none */
    ngx_uint_t                    id;
    time_t                        at;
} ngx_teleclinic_fhir_followup_t;


typedef struct {
    ngx_uint_t                    id;
    time_t                        taken;
    ngx_str_t                     content_type;  /* image/jpeg, image/png */
    ngx_str_t                     data;          /* the image's bytes */
} ngx_teleclinic_fhir_snapshot_t;


typedef struct {
    ngx_uint_t                    request;     /* the consent request's id */
    time_t                        asked;
    time_t                        answered;
    ngx_uint_t                    granted;
} ngx_teleclinic_fhir_consent_t;


typedef struct {
    ngx_str_t                     text;
    time_t                        at;
    ngx_uint_t                    id;
} ngx_teleclinic_fhir_addendum_t;


typedef struct {
    /* the appointment */
    uint64_t                      appt;        /* its id, 16 hex digits */
    ngx_str_t                     base;        /* this service's public URL,
                                                  for fullUrl/identifiers */
    ngx_str_t                     patient_name;
    ngx_str_t                     patient_phone;
    ngx_str_t                     reason;
    ngx_str_t                     doctor;      /* the directory's id */
    ngx_str_t                     doctor_name;
    ngx_str_t                     department;  /* its name */
    time_t                        start;       /* the slot */
    time_t                        end;
    time_t                        visit_start; /* the call */
    time_t                        visit_end;

    /* the record */
    time_t                        closed;
    ngx_str_t                     complaint;
    ngx_str_t                     history;
    ngx_str_t                     findings;
    ngx_str_t                     diagnosis;
    ngx_str_t                     advice;

    ngx_teleclinic_fhir_rx_t       *rx;
    ngx_uint_t                      nrx;
    ngx_teleclinic_fhir_order_t    *orders;
    ngx_uint_t                      norders;
    ngx_teleclinic_fhir_followup_t *followups;
    ngx_uint_t                      nfollowups;
    ngx_teleclinic_fhir_snapshot_t *snapshots;
    ngx_uint_t                      nsnapshots;
    ngx_teleclinic_fhir_consent_t  *consents;
    ngx_uint_t                      nconsents;
    ngx_teleclinic_fhir_addendum_t *addenda;
    ngx_uint_t                      naddenda;

    /* the patient's rating, for its own Bundle */
    ngx_uint_t                    score;       /* 1..5; 0: none */
    ngx_str_t                     comment;
    time_t                        rated;
} ngx_teleclinic_fhir_visit_t;


/*
 * The closed record as one transaction Bundle: Patient, Encounter,
 * Condition, MedicationRequest, ServiceRequest, Task, Media, Consent
 * (docs/fhir.md has the mapping).  The same visit gives the same Bundle,
 * so that a retry does not duplicate.  Text that FHIR cannot carry
 * (control characters, bytes that are not UTF-8) is replaced, not
 * refused.  Returns a new reference, NULL when memory runs out or
 * v->base is not UTF-8.
 */
json_t *ngx_teleclinic_fhir_record(ngx_teleclinic_fhir_visit_t *v);

/* the rating, in a Bundle of its own; NULL when v->score is 0 */
json_t *ngx_teleclinic_fhir_rating(ngx_teleclinic_fhir_visit_t *v);


#endif /* _NGX_TELECLINIC_FHIR_H_INCLUDED_ */
